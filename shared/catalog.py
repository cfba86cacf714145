"""Target table definitions, read from the PostgreSQL catalog.

Identifiers used in SQL are only ever the catalog's own names, quoted here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg
import msgspec

from shared.db import Conn

MAX_NAME_LENGTH = 63  # PostgreSQL's NAMEDATALEN - 1


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

    @property
    def required(self) -> bool:
        """Must be in the file: NOT NULL and nothing fills it in."""
        return self.not_null and not self.has_default


class TableDef(msgspec.Struct, frozen=True, kw_only=True):
    oid: int
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def split_table_name(raw: str, default_schema: str) -> tuple[str, str] | None:
    """`table` or `schema.table` → (schema, table); None if it cannot be a table name."""
    parts = raw.split(".")
    if len(parts) == 1:
        parts = [default_schema, parts[0]]
    if len(parts) != 2 or not all(0 < len(p) <= MAX_NAME_LENGTH for p in parts):
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
       a.attgenerated <> '' AS generated
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
    return TableDef(
        oid=oid,
        schema=found["nspname"],
        name=found["relname"],
        columns=columns,
        primary_key=primary_key,
    )


class HeaderMismatch(Exception):
    def __init__(self, missing: list[str], unexpected: list[str], duplicated: list[str]) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.duplicated = duplicated
        parts = []
        if missing:
            parts.append("missing required columns: " + ", ".join(missing))
        if unexpected:
            parts.append("columns not in the table: " + ", ".join(unexpected))
        if duplicated:
            parts.append("columns given twice: " + ", ".join(duplicated))
        super().__init__("; ".join(parts))


def match_header(header: Sequence[str], table: TableDef) -> tuple[str, ...]:
    """Map header names to the table's column names (exact, else case-insensitive).

    Every required column must be present; no name may be unknown or repeated.
    """
    exact = {c.name: c.name for c in table.columns}
    folded: dict[str, list[str]] = {}
    for c in table.columns:
        folded.setdefault(c.name.casefold(), []).append(c.name)
    mapped: list[str] = []
    unexpected: list[str] = []
    for raw in header:
        name = raw.strip()
        if name in exact:
            mapped.append(name)
        elif len(folded.get(name.casefold(), ())) == 1:
            mapped.append(folded[name.casefold()][0])
        else:
            unexpected.append(raw)
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in mapped:
        (repeated if name in seen else seen).add(name)
    duplicated = sorted(repeated)
    missing = [c.name for c in table.columns if c.required and c.name not in seen]
    if missing or unexpected or duplicated:
        raise HeaderMismatch(missing, unexpected, duplicated)
    return tuple(mapped)


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
