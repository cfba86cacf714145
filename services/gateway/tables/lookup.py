"""The target tables a request names: from the catalog only, within the key's scope."""

from __future__ import annotations

from aiohttp import web

from services.gateway.access.guard import TARGET, require_table
from services.gateway.problems import Problem
from shared.catalog import TableCache, TableDef
from shared.rulebook import RuleBook
from shared.service import POOL

TABLES = web.AppKey("tables", TableCache)
RULES = web.AppKey("rules", RuleBook)


async def find_table(request: web.Request, name: str) -> TableDef:
    """The table `name` (`schema.table` or `table`) if imports may use it and the key may
    too; else 404 (no such table in an allowed schema) or 403 (outside the key's tables)."""
    async with request.app[POOL].acquire() as conn:
        table = await request.app[TABLES].get(conn, name)
    if table is None:
        raise Problem(
            404,
            "unknown-table",
            "Unknown table",
            f"There is no table {name!r} that imports may write to.",
            table=name[:200],
        )
    request[TARGET] = table.qualified_name
    require_table(request, table.qualified_name)
    return table
