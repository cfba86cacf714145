"""`GET /api/v1/database/records?table=&id=` (the seed's `debug:record --id`): where a row
came from. The row as it is now; every import that inserted or updated it (file, line,
chunk, when, the key that uploaded it) with the values it had before each update; and
the row errors about its key (a duplicate, a bad key value) in imports into the table.

The key is the table's primary key: `id` once per key column, in the key's order, or
comma-separated. Values are compared by PostgreSQL with the columns' own types.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from services.gateway.access.guard import AUDIT_DETAIL
from services.gateway.imports.resources import respond
from services.gateway.params import Param, invalid, required_param
from services.gateway.problems import Problem
from services.gateway.tables.lookup import find_table
from shared import chunk_store
from shared.catalog import TableDef, quote_ident
from shared.db import Conn
from shared.error_codes import ErrorCode
from shared.key_store import TABLE_PATTERN
from shared.lineage import written_sql
from shared.service import POOL

routes = web.RouteTableDef()
TABLE = Param(
    name="table",
    schema={"type": "string", "pattern": TABLE_PATTERN},
    description="`schema.table` or `table`",
    required=True,
)
ID = Param(
    name="id",
    schema={"type": "string"},
    description="the primary key's value (comma-separated, or repeated)",
    required=True,
)
MAX_WRITES = 100  # imports listed, newest first


class Uploader(msgspec.Struct, kw_only=True):
    key_id: uuid.UUID
    name: str | None
    prefix: str | None


class Write(msgspec.Struct, kw_only=True):
    """An import that inserted or updated the row."""

    import_id: uuid.UUID
    action: Literal["inserted", "updated"]
    status: str  # the import's
    filename: str | None
    chunk: int
    line: int | None  # the file line the row came from
    loaded_at: datetime | None
    uploaded_by: Uploader | None
    before: dict[str, Any] | None  # an update: the row as it was
    links: dict[str, str]


class KeyRowError(msgspec.Struct, kw_only=True):
    """A row error about this key in an import into the table."""

    import_id: uuid.UUID
    line: int
    column: str
    code: ErrorCode
    message: str
    value: str | None


class RecordHistory(msgspec.Struct, kw_only=True):
    table: str
    key: dict[str, str]
    current: dict[str, Any] | None  # none: no such row now
    history: list[Write]  # newest first
    row_errors: list[KeyRowError]


def _key(request: web.Request, table: TableDef) -> list[str]:
    if not table.primary_key:
        raise Problem(
            409,
            "no-primary-key",
            "The table has no primary key",
            f"{table.qualified_name} has no primary key, so a row cannot be named by its key.",
        )
    raw = request.query.getall(ID.name, [])
    values = raw if len(raw) > 1 else required_param(request, ID.name).split(",")
    if len(values) != len(table.primary_key):
        names = ", ".join(table.primary_key)
        raise invalid(
            "id", f"id must give the primary key's {len(table.primary_key)} values ({names})."
        )
    return [v.strip() for v in values]


def _typed_key(table: TableDef, first: int) -> str:
    """SQL: the key as the loader records it in lineage (a jsonb array of typed values),
    from the text parameters $first.."""
    return f"jsonb_build_array({', '.join(table.key_params(first))})"


def _where(table: TableDef) -> str:
    return " AND ".join(
        f"t.{quote_ident(c)} = {param}"
        for c, param in zip(table.primary_key, table.key_params(1), strict=True)
    )


async def _line(
    conn: Conn, table: TableDef, import_id: Any, seq: int, key: list[str]
) -> int | None:
    """The file line of the row with this key in the chunk, from the chunk store (None if
    the chunk is gone, or the key is not among its cells)."""
    chunk = await chunk_store.read(conn, import_id, seq)
    if chunk is None:
        return None
    if not all(c in chunk.columns for c in table.primary_key):
        return None
    places = [chunk.columns.index(c) for c in table.primary_key]
    cells = [[row[p] if len(row) > p else "" for row in chunk.rows] for p in places]
    n = len(table.primary_key)
    arrays = ", ".join(f"${i + 1}::text[]" for i in range(n))
    names = ", ".join(f"c{i}" for i in range(n))
    same = " AND ".join(
        f"NULLIF(u.c{i}, '')::{cast} = ${n + i + 1}::text::{cast}"
        for i, cast in enumerate(table.column(c).cast_sql for c in table.primary_key)
    )
    try:
        found = await conn.fetchval(
            f"SELECT u.n FROM unnest({arrays}) WITH ORDINALITY AS u({names}, n)"
            f" WHERE {same} LIMIT 1",
            *cells,
            *key,
        )
    except asyncpg.DataError:  # a cell that is no value of the type: not the row loaded
        return None
    return None if found is None else chunk.line_numbers()[found - 1]


def _writes_sql(table: TableDef) -> str:
    """The lineage entries (inserted) and row images (updated, with the row before) that
    hold the key ($1..$n), in the table $n+1, newest first, at most $n+2."""
    n = len(table.primary_key)
    key = _typed_key(table, 1)
    holding = f"w.keys @> jsonb_build_array({key}) AND w.target_table = ${n + 1}"
    return (
        "WITH w AS ("
        " SELECT x.import_id, x.seq,"
        " CASE x.kind WHEN 'i' THEN 'inserted' ELSE 'updated' END AS action, x.before"
        f" FROM ({written_sql(holding)}) x WHERE x.key = {key})"
        " SELECT w.*, i.filename, i.status, i.created_at, i.key_id, k.name AS key_name,"
        "  k.lookup AS key_lookup, c.loaded_at FROM w"
        " JOIN tidegate.imports i ON i.id = w.import_id"
        " LEFT JOIN tidegate.api_keys k ON k.id = i.key_id"
        " LEFT JOIN tidegate.chunk_ledger c ON c.import_id = w.import_id AND c.seq = w.seq"
        f" ORDER BY c.loaded_at DESC NULLS LAST LIMIT ${n + 2}"
    )


@routes.get("/api/v1/database/records", name="records.read")
async def read_record(request: web.Request) -> web.Response:
    table = await find_table(request, required_param(request, TABLE.name))
    key = _key(request, table)
    try:
        async with request.app[POOL].acquire() as conn, conn.transaction(readonly=True):
            current = await conn.fetchval(
                f"SELECT to_jsonb(t) FROM {table.sql_name} t WHERE {_where(table)}", *key
            )
            writes = await conn.fetch(_writes_sql(table), *key, table.qualified_name, MAX_WRITES)
            history = [
                Write(
                    import_id=w["import_id"],
                    action=w["action"],
                    status=w["status"],
                    filename=w["filename"],
                    chunk=w["seq"],
                    line=await _line(conn, table, w["import_id"], w["seq"], key),
                    loaded_at=w["loaded_at"],
                    uploaded_by=Uploader(
                        key_id=w["key_id"], name=w["key_name"], prefix=w["key_lookup"]
                    )
                    if w["key_id"]
                    else None,
                    before=msgspec.json.decode(w["before"]) if w["before"] else None,
                    links={"import": f"/api/v1/database/imports/{w['import_id']}"},
                )
                for w in writes
            ]
            errors = await conn.fetch(
                "SELECT e.import_id, e.line, e.column_name, e.code, e.message, e.value"
                " FROM tidegate.row_errors e JOIN tidegate.imports i ON i.id = e.import_id"
                " WHERE i.target_table = $1 AND e.column_name = ANY($2::text[])"
                " AND e.value = ANY($3::text[]) ORDER BY i.created_at DESC LIMIT 100",
                table.qualified_name,
                list(table.primary_key),
                key,
            )
    except asyncpg.DataError as exc:
        raise invalid("id", f"id is not a value of the key's type: {exc}") from None
    request[AUDIT_DETAIL]["key"] = key
    return respond(
        RecordHistory(
            table=table.qualified_name,
            key=dict(zip(table.primary_key, key, strict=True)),
            current=msgspec.json.decode(current) if current is not None else None,
            history=history,
            row_errors=[
                KeyRowError(
                    import_id=e["import_id"],
                    line=e["line"],
                    column=e["column_name"],
                    code=e["code"],
                    message=e["message"],
                    value=e["value"],
                )
                for e in errors
            ],
        )
    )
