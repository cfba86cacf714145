"""Rolling an import back (planned by shared/rollback.py): the loader re-plans under the
import's exclusive lock and a lock on the table, then deletes and restores in the same
transaction as the operation's outcome."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import structlog

from services.loader.metrics import ROWS_ROLLED_BACK
from shared import imports, rollback
from shared.catalog import TableCache, TableDef, quote_ident
from shared.db import Conn

log = structlog.get_logger(__name__)

Outcome = tuple[str, dict[str, Any], str | None]  # status, result, error (as for backups)


async def apply(conn: Conn, table: TableDef, found: rollback.Plan) -> rollback.Plan:
    """Delete and restore what the plan found (conflicts included: call only when there
    are none, or when forced); the table has been locked since the plan was made."""
    names = ", ".join(quote_ident(c.name) for c in table.columns)
    values = ", ".join(f"r.{quote_ident(c.name)}" for c in table.columns)
    record = f"jsonb_populate_record(NULL::{table.sql_name}, u.before)"
    await conn.execute(
        f"DELETE FROM {table.sql_name} t USING tg_undo u"
        f" WHERE u.kind = 'i' AND u.state <> 'deleted' AND {rollback.matches(table, 't', 'u.key')}"
    )
    await conn.execute(
        f"UPDATE {table.sql_name} t SET ({names}) = ROW({values})"
        f" FROM tg_undo u CROSS JOIN LATERAL {record} r"
        f" WHERE u.kind = 'u' AND u.state <> 'deleted' AND {rollback.matches(table, 't', 'u.key')}"
    )
    await conn.execute(
        f"INSERT INTO {table.sql_name} ({names}) OVERRIDING SYSTEM VALUE SELECT {values}"
        f" FROM tg_undo u CROSS JOIN LATERAL {record} r WHERE u.kind = 'u' AND u.state = 'deleted'"
    )
    overwritten = await conn.fetchval(
        "SELECT count(*) FROM tg_undo WHERE state = 'changed' OR (state = 'deleted' AND kind = 'u')"
    )
    return msgspec.structs.replace(found, overwritten=int(overwritten))


async def run(conn: Conn, tables: TableCache, op: asyncpg.Record) -> Outcome:
    """The rollback operation `op`, inside the caller's transaction."""
    import_id = op["import_id"]
    await imports.hold_for_rollback(conn, import_id)
    imp = await conn.fetchrow(rollback.IMPORT_FOR_ROLLBACK + " FOR UPDATE", import_id)
    if imp is None:
        return "refused", {}, "the import does not exist"
    table = await tables.get(conn, imp["target_table"])
    # An automatic rollback (of a failed or cancelled import) does not wait for later imports:
    # their changes to its rows are conflicts, which it does not overwrite.
    refused = await rollback.refusal(conn, imp, table, later=op["trigger"] == "request")
    if refused is not None:
        return "refused", {"code": refused.code, **refused.extra}, refused.detail
    if table is None:  # nothing was written, so there is nothing to undo
        return "completed", msgspec.to_builtins(rollback.Plan()), None
    if not op["dry_run"]:
        await rollback.lock(conn, table)
    found = await rollback.plan(conn, import_id, table)
    if op["dry_run"]:
        return "completed", {"dry_run": True, **msgspec.to_builtins(found)}, None
    if found.conflicts and not op["force"]:
        detail = f"{found.conflicts} rows the import wrote were changed or deleted since"
        return "refused", {"code": "rollback-conflict", **msgspec.to_builtins(found)}, detail
    try:
        async with conn.transaction():
            done = await apply(conn, table, found)
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.exceptions.RaiseError) as exc:
        log.warning("rollback refused by the database", error=str(exc))
        return "failed", msgspec.to_builtins(found), f"the database refused the rollback: {exc}"
    if op["trigger"] == "request":
        await conn.execute(
            "UPDATE tidegate.imports SET status = 'rolled_back', version = version + 1,"
            " updated_at = now() WHERE id = $1",
            import_id,
        )
    ROWS_ROLLED_BACK.labels("deleted").inc(done.delete)
    ROWS_ROLLED_BACK.labels("restored").inc(done.restore)
    log.info(
        "import rolled back",
        deleted=done.delete,
        restored=done.restore,
        overwritten=done.overwritten,
        trigger=op["trigger"],
    )
    return "completed", msgspec.to_builtins(done), None
