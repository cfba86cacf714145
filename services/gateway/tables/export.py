"""`GET /api/v1/database/export?table=`: a table as a CSV download, read from one
consistent snapshot into a spool and then sent (no connection waits on the client); cells
a spreadsheet would run as formulas are escaped (OWASP)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from urllib.parse import quote

from aiohttp import web

from services.gateway.access.guard import AUDIT_DETAIL
from services.gateway.intake.spool import Spool
from services.gateway.params import Param, invalid, required_param
from services.gateway.tables.lookup import find_table
from shared.catalog import TableDef, quote_ident
from shared.service import POOL
from shared.spreadsheet import escape_cell

routes = web.RouteTableDef()
TABLE = Param(
    name="table",
    schema={"type": "string", "minLength": 1},
    description="`schema.table`",
    required=True,
)
COLUMNS = Param(
    name="columns",
    schema={"type": "string"},
    description="comma-separated column names (default: all)",
)
BATCH = 2000


def _columns(request: web.Request, table: TableDef) -> list[str]:
    """The table's columns, or those named in `?columns=` (matched to the catalog)."""
    names = [c.name for c in table.columns]
    raw = request.query.get(COLUMNS.name)
    if raw is None:
        return names
    wanted = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in names]
    if not wanted or unknown:
        raise invalid("columns", f"columns must name columns of {table.qualified_name}.")
    return wanted


def _select(table: TableDef, columns: list[str]) -> str:
    """Only catalog names, quoted; every value as PostgreSQL's own text."""
    cells = ", ".join(f"{quote_ident(c)}::text" for c in columns)
    order = ", ".join(quote_ident(c) for c in table.primary_key) or "ctid"
    return f"SELECT {cells} FROM {table.sql_name} ORDER BY {order}"  # noqa: S608


def _csv_block(rows: Sequence[Sequence[str | None]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([["" if v is None else escape_cell(v) for v in row] for row in rows])
    return out.getvalue().encode()


@routes.get("/api/v1/database/export", name="export.read")
async def export_table(request: web.Request) -> web.StreamResponse:
    table = await find_table(request, required_param(request, TABLE.name))
    columns = _columns(request, table)
    rows = 0
    with Spool() as spool:
        async with request.app[POOL].acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                cursor = await conn.cursor(_select(table, columns))
                spool.write(_csv_block([columns]))
                while batch := await cursor.fetch(BATCH):
                    spool.write(_csv_block([list(r) for r in batch]))
                    rows += len(batch)
        request[AUDIT_DETAIL]["rows"] = rows
        return await spool.send(
            request,
            {
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": "attachment; filename=export.csv; "
                f"filename*=UTF-8''{quote(table.qualified_name)}.csv",
            },
        )
