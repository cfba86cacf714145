"""What undoing an import means: the rows it inserted are deleted, the rows it updated get
their previous values back. This module plans it (the gateway answers a dry run or a
conflict at once); the loader, the only writer of target tables, applies the plan.

The import's lineage (keys of the rows it inserted, with the id of the transaction that
loaded them, or with their digests) and row images (rows as they were before it updated
them, with the keys and digests of the rows as updated) say what it wrote. A row whose
`xmin` is no longer that transaction's id, or whose digest differs from the one recorded, or
that is gone, was changed since by someone else: a conflict. (`xmin` survives VACUUM FREEZE,
VACUUM FULL and CLUSTER; a restored dump writes every row anew, so after a restore every row
of an earlier import counts as changed.) With conflicts the rollback changes nothing
unless forced; forced, it deletes and restores anyway and reports what it overwrote.

The loader plans again and applies in one transaction, under the import's exclusive lock
(no chunk of it loads meanwhile) and a SHARE ROW EXCLUSIVE lock on the table (readers go on;
writers wait), so the plan and the effect see the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import asyncpg
import msgspec

from shared.catalog import TableDef, quote_ident, quote_literal
from shared.db import Conn
from shared.lineage import CHANGED, written_sql

MAX_LISTED = 100  # conflicting keys listed in a result


class Conflict(msgspec.Struct, frozen=True):
    key: list[Any]
    written: Literal["inserted", "updated"]
    now: Literal["changed", "deleted"]


class Plan(msgspec.Struct, kw_only=True):
    """What a rollback deletes, restores and conflicts on (before or after it ran)."""

    delete: int = 0
    restore: int = 0
    conflicts: int = 0
    conflict_keys: list[Conflict] = msgspec.field(default_factory=list)
    overwritten: int = 0  # conflicting rows a forced rollback deleted or restored anyway


def matches(table: TableDef, row: str, key: str) -> str:
    """SQL: row `row` of the table has the primary key held in the jsonb array `key`."""
    return " AND ".join(
        f"{row}.{quote_ident(c)} = ({key}->>{i})::{table.column(c).cast_sql}"
        for i, c in enumerate(table.primary_key)
    )


async def _collect(conn: Conn, import_id: object, table: TableDef) -> None:
    """The temporary table `tg_written` of every row the import wrote: kind 'i' (inserted)
    or 'u' (updated, with its before-image), its key, and its digest as written or the
    transaction id (32 bits, as `xmin` holds it) that wrote it."""
    await conn.execute(
        "CREATE TEMP TABLE tg_written (kind text, key jsonb, digest bigint, before jsonb,"
        " xid bigint) ON COMMIT DROP"
    )
    # Images stored before keys were recorded: the key of the row as it was before.
    old_key = (
        "jsonb_build_array("
        + ", ".join(f"x.before->{quote_literal(c)}" for c in table.primary_key)
        + ")"
    )
    await conn.execute(
        f"INSERT INTO tg_written SELECT x.kind, coalesce(x.key, {old_key}), x.digest,"
        f" x.before, x.xid FROM ({written_sql('w.import_id = $1')}) x",
        import_id,
    )
    await conn.execute("ANALYZE tg_written")


async def unsupported(conn: Conn, import_id: object, table: TableDef | None) -> str | None:
    """Why this import's rows cannot be told apart from others, if they cannot."""
    wrote = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tidegate.load_lineage WHERE import_id = $1"
        " AND row_count > 0) OR EXISTS (SELECT 1 FROM tidegate.row_images WHERE import_id = $1)",
        import_id,
    )
    if not wrote:
        return None
    if table is None:
        return "the import's table no longer exists"
    if not table.primary_key:
        return f"{table.qualified_name} has no primary key, so the import's rows cannot be found"
    return None


async def lock(conn: Conn, table: TableDef) -> None:
    """Readers go on; writers wait until the transaction ends."""
    await conn.execute(f"LOCK TABLE {table.sql_name} IN SHARE ROW EXCLUSIVE MODE")


async def plan(conn: Conn, import_id: object, table: TableDef) -> Plan:
    """Collect the import's rows and compare them with the table: the temporary table
    `tg_undo` holds each with its `state` (ok, changed or deleted)."""
    await _collect(conn, import_id, table)
    await conn.execute(
        "CREATE TEMP TABLE tg_undo ON COMMIT DROP AS SELECT w.*,"
        " CASE WHEN t IS NULL THEN 'deleted'"  # a primary key is never NULL
        f" WHEN {CHANGED} THEN 'changed' ELSE 'ok' END AS state"
        f" FROM tg_written w LEFT JOIN {table.sql_name} t ON {matches(table, 't', 'w.key')}"
    )
    await conn.execute("ANALYZE tg_undo")
    counts = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE kind = 'i' AND state <> 'deleted') AS delete,"
        " count(*) FILTER (WHERE kind = 'u') AS restore,"
        " count(*) FILTER (WHERE state <> 'ok') AS conflicts FROM tg_undo"
    )
    assert counts is not None
    listed = await conn.fetch(
        "SELECT key, kind, state FROM tg_undo WHERE state <> 'ok' ORDER BY key LIMIT $1",
        MAX_LISTED,
    )
    return Plan(
        delete=counts["delete"],
        restore=counts["restore"],
        conflicts=counts["conflicts"],
        conflict_keys=[
            Conflict(
                key=msgspec.json.decode(r["key"]),
                written="inserted" if r["kind"] == "i" else "updated",
                now=r["state"],
            )
            for r in listed
        ],
    )


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why an import cannot be rolled back now: `code` is the problem type."""

    code: str
    detail: str
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


IMPORT_FOR_ROLLBACK = (
    "SELECT id, target_table, status, mode, finished_at, created_at, lineage_purged_at"
    " FROM tidegate.imports WHERE id = $1"
)


async def refusal(
    conn: Conn,
    imp: Mapping[str, Any] | asyncpg.Record,
    table: TableDef | None,
    *,
    later: bool = True,
) -> Refusal | None:
    """The checks before any plan: the import has finished and loads rows, it was not
    rolled back already, (if `later`) no later import into its table is still running,
    its lineage is still kept, and its rows can be found."""
    if imp["finished_at"] is None:
        return Refusal(
            code="import-running",
            detail="The import is still running: cancel it instead (POST .../cancel).",
        )
    if imp["mode"] != "import":
        return Refusal(
            code="nothing-to-roll-back", detail=f"A {imp['mode']} import loaded nothing."
        )
    done = await conn.fetchval(
        "SELECT id FROM tidegate.operations WHERE import_id = $1 AND kind = 'rollback'"
        " AND NOT dry_run AND status = 'completed' LIMIT 1",
        imp["id"],
    )
    if done is not None:
        return Refusal(
            code="import-rolled-back",
            detail="The import has been rolled back already.",
            extra={"operation": str(done)},
        )
    running = await conn.fetch(
        "SELECT id FROM tidegate.imports WHERE target_table = $1 AND finished_at IS NULL"
        " AND created_at > $2 AND id <> $3 ORDER BY created_at LIMIT 10",
        imp["target_table"],
        imp["created_at"],
        imp["id"],
    )
    if later and running:
        return Refusal(
            code="later-import-running",
            detail=f"A later import into {imp['target_table']} is still running; roll back"
            " when it has finished.",
            extra={"running": [str(r["id"]) for r in running]},
        )
    if imp["lineage_purged_at"] is not None:
        return Refusal(
            code="lineage-expired",
            detail="What the import wrote was forgotten on"
            f" {imp['lineage_purged_at']:%Y-%m-%d} (TIDEGATE_LINEAGE_RETENTION_DAYS, or a"
            " purge), so its rows can no longer be told apart: restore a backup instead.",
        )
    reason = await unsupported(conn, imp["id"], table)
    if reason is not None:
        return Refusal(code="rollback-unsupported", detail=reason)
    return None
