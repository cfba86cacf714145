"""Target table definitions, read from the PostgreSQL catalog.

Identifiers used in SQL are only ever the catalog's own names, quoted here.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

import asyncpg
import msgspec

from shared.db import Conn

MAX_NAME_LENGTH = 63  # PostgreSQL's NAMEDATALEN - 1
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext", "name"})


class Column(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type_name: str  # base type's name (domains resolved), e.g. "int4", "varchar", "numeric"
    type_sql: str  # as PostgreSQL prints it, e.g. "character varying(40)"
    cast_sql: str  # the type without modifiers, e.g. "character varying": assignment applies them
    not_null: bool
    has_default: bool
    max_length: int | None = None  # varchar(n) / char(n)
    precision: int | None = None  # numeric(p, s)
    scale: int | None = None
    enum_labels: tuple[str, ...] | None = None  # an enum type (or a domain over one)

    @property
    def required(self) -> bool:
        """Must be in the file: NOT NULL and nothing fills it in."""
        return self.not_null and not self.has_default


class ForeignKey(msgspec.Struct, frozen=True, kw_only=True):
    """`columns` of this table must match `ref_columns` of `ref_table` (`schema.table`)."""

    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_name: str
    ref_columns: tuple[str, ...]

    @property
    def ref_table(self) -> str:
        return f"{self.ref_schema}.{self.ref_name}"


class TableDef(msgspec.Struct, frozen=True, kw_only=True):
    oid: int
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...] = ()  # the primary key first, then UNIQUE ones
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def qualified_name(self) -> str:
        """`schema.table`, the form used in events and the API."""
        return f"{self.schema}.{self.name}"

    @property
    def sql_name(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def key_params(self, first: int) -> list[str]:
        """SQL: the primary key's values as parameters $first.. of text, each cast to its
        column's type (so PostgreSQL's own equality compares them)."""
        return [
            f"${first + i}::text::{self.column(c).cast_sql}" for i, c in enumerate(self.primary_key)
        ]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal of `text` (for names built into SQL, e.g. jsonb keys)."""
    return "'" + text.replace("'", "''") + "'"


def split_table_name(raw: str, default_schema: str) -> tuple[str, str] | None:
    """`table` or `schema.table` → (schema, table); None if it cannot be a table name."""
    parts = raw.split(".")
    if len(parts) == 1:
        parts = [default_schema, parts[0]]
    # PostgreSQL's limit is in bytes: a longer name is an error there, not a miss.
    if len(parts) != 2 or not all(0 < len(p.encode()) <= MAX_NAME_LENGTH for p in parts):
        return None
    if any(ch in p for p in parts for ch in '\x00"\n\r'):
        return None
    return parts[0], parts[1]


_TABLE_SQL = """
SELECT c.oid, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
"""

_COLUMNS_SQL = """
SELECT a.attname,
       coalesce(bt.typname, t.typname) AS type_name,
       format_type(a.atttypid, a.atttypmod) AS type_sql,
       format_type(a.atttypid, NULL) AS cast_sql,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
       a.attnotnull OR coalesce(t.typnotnull, false) AS not_null,
       a.atthasdef OR a.attidentity <> '' AS has_default,
       a.attgenerated <> '' AS generated,
       CASE WHEN coalesce(bt.typtype, t.typtype) = 'e' THEN ARRAY(
           SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = coalesce(bt.oid, t.oid)
           ORDER BY e.enumsortorder) END AS enum_labels
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary
ORDER BY k.ord
"""


# Unique indexes a row can be checked against: whole columns, no predicate.
_UNIQUE_KEYS_SQL = """
SELECT array_agg(a.attname ORDER BY k.ord) AS columns
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid, i.indisprimary
ORDER BY i.indisprimary DESC, i.indexrelid
"""

_FOREIGN_KEYS_SQL = """
SELECT c.conname, rn.nspname AS ref_schema, rc.relname AS ref_name,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
             ORDER BY k.o) AS columns,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
             ORDER BY k.o) AS ref_columns
FROM pg_constraint c
JOIN pg_class rc ON rc.oid = c.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE c.conrelid = $1 AND c.contype = 'f'
ORDER BY c.conname
"""


def _column(row: asyncpg.Record) -> Column:
    type_name: str = row["type_name"]
    typmod: int = row["typmod"]
    max_length = precision = scale = None
    if typmod >= 4 and type_name in ("varchar", "bpchar"):
        max_length = typmod - 4
    elif typmod >= 4 and type_name == "numeric":
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    return Column(
        name=row["attname"],
        type_name=type_name,
        type_sql=row["type_sql"],
        cast_sql=row["cast_sql"],
        not_null=row["not_null"],
        has_default=row["has_default"],
        max_length=max_length,
        precision=precision,
        scale=scale,
        enum_labels=tuple(row["enum_labels"]) if row["enum_labels"] is not None else None,
    )


async def load_table(conn: Conn, raw_name: str, allowed_schemas: Sequence[str]) -> TableDef | None:
    """The definition of a table in an allowed schema, or None if there is no such table."""
    parts = split_table_name(raw_name, allowed_schemas[0])
    if parts is None or parts[0] not in allowed_schemas:
        return None
    found = await conn.fetchrow(_TABLE_SQL, *parts)
    if found is None:
        return None
    oid = found["oid"]
    columns = tuple(_column(r) for r in await conn.fetch(_COLUMNS_SQL, oid) if not r["generated"])
    primary_key = tuple(r["attname"] for r in await conn.fetch(_PRIMARY_KEY_SQL, oid))
    unique_keys = tuple(tuple(r["columns"]) for r in await conn.fetch(_UNIQUE_KEYS_SQL, oid))
    foreign_keys = tuple(
        ForeignKey(
            name=r["conname"],
            columns=tuple(r["columns"]),
            ref_schema=r["ref_schema"],
            ref_name=r["ref_name"],
            ref_columns=tuple(r["ref_columns"]),
        )
        for r in await conn.fetch(_FOREIGN_KEYS_SQL, oid)
    )
    return TableDef(
        oid=oid,
        schema=found["nspname"],
        name=found["relname"],
        columns=columns,
        primary_key=primary_key,
        unique_keys=tuple(dict.fromkeys(unique_keys)),
        foreign_keys=foreign_keys,
    )


class HeaderMismatch(Exception):
    def __init__(self, missing: list[str], unexpected: list[str], duplicated: list[str]) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.duplicated = duplicated
        parts = []
        for what, names in (
            ("missing required columns", missing),
            ("columns not in the table", unexpected),
            ("columns given twice", duplicated),
        ):
            if names:
                more = f" … ({len(names) - 10} more)" if len(names) > 10 else ""
                parts.append(f"{what}: " + ", ".join(names[:10]) + more)
        super().__init__("; ".join(parts))


def match_header(
    header: Sequence[str],
    table: TableDef,
    *,
    aliases: Mapping[str, str] | None = None,
    also_required: Collection[str] = (),
) -> tuple[str, ...]:
    """Map header names to the table's column names (exact, else case-insensitive; then
    the rule file's aliases, also case-insensitive).

    Every required column (and every one in `also_required`) must be present; no name may
    be unknown or repeated.
    """
    columns, _ = map_header(header, table, aliases=aliases, also_required=also_required)
    return columns


def map_header(
    header: Sequence[str],
    table: TableDef,
    *,
    aliases: Mapping[str, str] | None = None,
    also_required: Collection[str] = (),
    ignore_unknown: bool = False,
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """As `match_header`, and the positions in `header` of the columns returned; with
    `ignore_unknown`, names the table does not have are left out instead of refused."""
    exact = {c.name: c.name for c in table.columns}
    folded: dict[str, list[str]] = {}
    for c in table.columns:
        folded.setdefault(c.name.casefold(), []).append(c.name)
    for alias, target in (aliases or {}).items():
        folded.setdefault(alias.strip().casefold(), []).append(target)
    mapped: list[str] = []
    positions: list[int] = []
    unexpected: list[str] = []
    for position, raw in enumerate(header):
        name = raw.strip()
        if name in exact:
            mapped.append(name)
        elif len(folded.get(name.casefold(), ())) == 1:
            mapped.append(folded[name.casefold()][0])
        else:
            unexpected.append(raw)
            continue
        positions.append(position)
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in mapped:
        (repeated if name in seen else seen).add(name)
    duplicated = sorted(repeated)
    missing = [
        c.name
        for c in table.columns
        if (c.required or c.name in also_required) and c.name not in seen
    ]
    if ignore_unknown:
        unexpected = []
    if missing or unexpected or duplicated:
        raise HeaderMismatch(missing, unexpected, duplicated)
    return tuple(mapped), tuple(positions)


class TableCache:
    """Table definitions for a few seconds, so a chunk does not cost a catalog round trip."""

    def __init__(self, allowed_schemas: Sequence[str], ttl_seconds: float = 5.0) -> None:
        self._allowed = tuple(allowed_schemas)
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, TableDef | None]] = {}

    async def get(self, conn: Conn, name: str) -> TableDef | None:
        now = time.monotonic()
        cached = self._entries.get(name)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        table = await load_table(conn, name, self._allowed)
        if table is not None:  # a miss is not cached: the table may be created any moment
            self._entries[name] = (now, table)
        return table
