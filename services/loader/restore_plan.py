"""The SQL of a restore that other tables' rows may reference.

A restore does not empty its tables and load them again (a referencing row would block the
delete, or a cascade would delete it). The backup's rows are loaded into a temporary
staging table per table, and then, in the restore's one transaction:

1. every row of another table that references a key value the backup does not have is
   looked for; the first one found refuses the restore, named by its table and key;
2. rows that differ from the backup's are updated (matched by primary key) and the missing
   ones inserted, parents before children;
3. rows the backup lacks are deleted, children before parents.

Rows the backup has unchanged are not written at all: they keep their `xmin`, so a rollback
of an earlier import still finds them as that import left them. A table without a primary
key is emptied and loaded whole (no foreign key can reference it by a key it lacks).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.catalog import quote_ident, quote_literal
from shared.db import Conn

ORPHAN = "tidegate-restore-orphan"  # the prefix of the refusal's message


@dataclass(frozen=True)
class Restored:
    """A table of the restore."""

    name: str  # schema.table as pg_dump prints it (format('%I.%I'))
    staging: str  # its staging table (in pg_temp)
    columns: tuple[str, ...]  # the columns the dump holds (all but generated ones)
    settable: tuple[str, ...]  # those an UPDATE may set (not the key, not identity ALWAYS)
    key: tuple[str, ...]  # the primary key; () if none
    parents: frozenset[str]  # names of the restore's tables it references


@dataclass(frozen=True)
class Reference:
    """A foreign key from a table outside the restore to one inside it."""

    child: str
    child_columns: tuple[str, ...]
    child_key: tuple[str, ...]  # the child's primary key, to name a row; () if none
    parent: Restored
    parent_columns: tuple[str, ...]


_COLUMNS = """
SELECT a.attname, a.attidentity = 'a' AS always,
       coalesce(a.attnum = ANY (i.indkey), false) AS in_key
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""
_KEY = """
SELECT coalesce(array_agg(a.attname ORDER BY k.n), '{}')
FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary AND a.attrelid = $1
"""
_REFERENCES = """
SELECT c.conrelid, format('%I.%I', n.nspname, r.relname) AS child, c.confrelid,
       (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY
          AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
         AS child_columns,
       (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY
          AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
         AS parent_columns
FROM pg_constraint c
JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE c.contype = 'f' AND (c.confrelid = ANY ($1::oid[]) OR c.conrelid = ANY ($1::oid[]))
"""


async def plan(conn: Conn, tables: list[str]) -> tuple[list[Restored], list[Reference]]:
    """The restore's tables (parents first) and the references into them from outside.
    `tables` are quoted `schema.table` names."""
    oids: list[int] = []
    found: dict[int, Restored] = {}
    for i, table in enumerate(tables):
        row = await conn.fetchrow(
            "SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::regclass",
            table,
        )
        assert row is not None
        columns = await conn.fetch(_COLUMNS, row["oid"])
        key = tuple(await conn.fetchval(_KEY, row["oid"]))
        oids.append(row["oid"])
        found[row["oid"]] = Restored(
            name=row["name"],
            staging=f"tidegate_restore_{i}",
            columns=tuple(c["attname"] for c in columns),
            settable=tuple(c["attname"] for c in columns if not c["always"] and not c["in_key"]),
            key=key,
            parents=frozenset(),
        )
    references: list[Reference] = []
    parents: dict[int, set[str]] = {oid: set() for oid in oids}
    for fk in await conn.fetch(_REFERENCES, oids):
        if fk["conrelid"] in found and fk["confrelid"] in found:
            if fk["conrelid"] != fk["confrelid"]:
                parents[fk["conrelid"]].add(found[fk["confrelid"]].name)
        elif fk["confrelid"] in found:
            references.append(
                Reference(
                    child=fk["child"],
                    child_columns=tuple(fk["child_columns"]),
                    child_key=tuple(await conn.fetchval(_KEY, fk["conrelid"])),
                    parent=found[fk["confrelid"]],
                    parent_columns=tuple(fk["parent_columns"]),
                )
            )
    restored = [
        Restored(**{**t.__dict__, "parents": frozenset(parents[oid])}) for oid, t in found.items()
    ]
    return _parents_first(restored), references


def _parents_first(tables: list[Restored]) -> list[Restored]:
    ordered: list[Restored] = []
    pending = list(tables)
    while pending:
        ready = [t for t in pending if not t.parents - {o.name for o in ordered} - {t.name}]
        step = ready or pending[:1]  # a cycle: its order does not matter to deferred keys
        ordered += step
        pending = [t for t in pending if t not in step]
    return ordered


def _cols(names: tuple[str, ...], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + quote_ident(n) for n in names)


def _same(key: tuple[str, ...], a: str, b: str) -> str:
    return " AND ".join(f"{a}.{quote_ident(c)} = {b}.{quote_ident(c)}" for c in key)


def before_sql(tables: list[Restored]) -> str:
    """Lock the tables and make their staging tables (the dump's COPYs load these)."""
    names = ", ".join(t.name for t in tables)
    staging = [
        f"CREATE TEMP TABLE {t.staging} ON COMMIT DROP AS"
        f" SELECT {_cols(t.columns)} FROM {t.name} WITH NO DATA"
        for t in tables
    ]
    lock = f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE"
    return "; ".join(["SET CONSTRAINTS ALL DEFERRED", lock, *staging])


def _orphan_check(ref: Reference) -> str:
    """Raise, naming the first row of `ref.child` whose referenced key the backup lacks."""
    named = ", ".join(
        f"format('%s = %s', {quote_literal(col)}, quote_nullable(c.{quote_ident(col)}::text))"
        for col in ref.child_key or ref.child_columns
    )
    pointed = ", ".join(
        f"format('%s = %s', {quote_literal(p)}, quote_nullable(c.{quote_ident(f)}::text))"
        for f, p in zip(ref.child_columns, ref.parent_columns, strict=True)
    )
    not_null = " AND ".join(f"c.{quote_ident(f)} IS NOT NULL" for f in ref.child_columns)
    matched = " AND ".join(
        f"s.{quote_ident(p)} = c.{quote_ident(f)}"
        for f, p in zip(ref.child_columns, ref.parent_columns, strict=True)
    )
    message = (
        f"format('%s (%s) references %s (%s), a row the backup does not have',"
        f" {quote_literal(ref.child)}, concat_ws(', ', {named}), {quote_literal(ref.parent.name)},"
        f" concat_ws(', ', {pointed}))"
    )
    return (
        "DO $orphan$ DECLARE found text; BEGIN"
        f" SELECT {message} INTO found FROM {ref.child} c WHERE {not_null}"
        f" AND NOT EXISTS (SELECT FROM pg_temp.{ref.parent.staging} s WHERE {matched}) LIMIT 1;"
        f" IF found IS NOT NULL THEN RAISE EXCEPTION '{ORPHAN}: %', found"
        " USING ERRCODE = 'foreign_key_violation'; END IF; END $orphan$"
    )


def merge_sql(tables: list[Restored], references: list[Reference]) -> str:
    """Refuse orphans, then make each table the backup's (see the module docstring)."""
    statements = [_orphan_check(ref) for ref in references]
    for t in tables:  # parents first
        stage = f"pg_temp.{t.staging}"
        if not t.key:
            statements += [f"DELETE FROM {t.name}", _insert(t, f"SELECT * FROM {stage}")]
            continue
        if t.settable:
            statements.append(
                f"UPDATE {t.name} t SET ({_cols(t.settable)}) = ROW({_cols(t.settable, 's')})"
                f" FROM {stage} s WHERE {_same(t.key, 't', 's')}"
                f" AND ROW({_cols(t.columns, 't')})::text IS DISTINCT FROM"
                f" ROW({_cols(t.columns, 's')})::text"
            )
        statements.append(
            _insert(
                t,
                f"SELECT * FROM {stage} s WHERE NOT EXISTS"
                f" (SELECT FROM {t.name} t WHERE {_same(t.key, 't', 's')})",
            )
        )
    for t in reversed(tables):  # children first
        if t.key:
            statements.append(
                f"DELETE FROM {t.name} t WHERE NOT EXISTS"
                f" (SELECT FROM pg_temp.{t.staging} s WHERE {_same(t.key, 't', 's')})"
            )
    return "; ".join(statements)


def _insert(t: Restored, select: str) -> str:
    return f"INSERT INTO {t.name} ({_cols(t.columns)}) OVERRIDING SYSTEM VALUE {select}"
