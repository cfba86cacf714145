"""Recovery of an import: roll it back after it committed, cancel it while it runs, export
its failed rows, retry them, and follow the operations this starts.

A rollback is planned here first (shared/rollback.py, read-only): a dry run is answered at
once, and a rollback that would overwrite later changes is refused with 409 and the keys,
unless forced. The loader plans again and applies the rollback (it is the only writer of
target tables), so the 202 answer points at an operation to follow.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from services.gateway.access import idempotency
from services.gateway.access.guard import AUDIT_DETAIL, TARGET, principal_of, require
from services.gateway.imports import failed_rows
from services.gateway.imports.parameters import import_options
from services.gateway.imports.resources import API, Import, import_of, import_url, respond
from services.gateway.imports.submit import accept_import, visible_import
from services.gateway.intake import import_store
from services.gateway.intake.relay import RELAY
from services.gateway.intake.spool import Spool
from services.gateway.metrics import IMPORTS_CANCELLED
from services.gateway.params import FLAG, Param, flag, path_id
from services.gateway.problems import Problem
from services.gateway.tables.lookup import TABLES, find_table
from shared import imports, operations, rollback
from shared.api_keys import Principal
from shared.db import Conn
from shared.events import OperationKind, OperationStatus
from shared.rollback import Plan
from shared.service import POOL, SETTINGS

routes = web.RouteTableDef()
FORCE = Param(name="force", schema=FLAG, description="overwrite rows changed since (reported)")
DRY_RUN = Param(
    name="dry_run", schema=FLAG, description="report what would be deleted, restored, conflict"
)
SHOWN_APART = frozenset({"result", "links", "created_by"})


def operation_url(operation_id: uuid.UUID | str) -> str:
    return f"{API}/operations/{operation_id}"


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    """An operation as the API shows it (`result`: what it did or found, by kind)."""

    id: uuid.UUID
    kind: OperationKind
    trigger: operations.Trigger
    status: OperationStatus
    import_id: uuid.UUID | None
    backup_id: uuid.UUID | None
    force: bool
    dry_run: bool
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_by: uuid.UUID | None  # the key that asked (none: started by tidegate itself)
    created_at: datetime
    finished_at: datetime | None
    links: dict[str, str]


class Accepted(Operation, frozen=True, kw_only=True, omit_defaults=True):
    """The 202 answer that starts an operation: the operation, and what the request
    found on the way (a rollback's plan; a backup's resource)."""

    plan: Plan | None = None
    backup: str | None = None


class RollbackPreview(Plan, kw_only=True):
    """`dry_run=true`: what a rollback would do, changing nothing."""

    import_id: uuid.UUID
    dry_run: bool = True


class Cancelled(msgspec.Struct, kw_only=True):
    import_: Import = msgspec.field(name="import")
    rollback: Operation | None  # of what the import had loaded


def render_operation(row: asyncpg.Record) -> Operation:
    links = {"self": operation_url(row["id"])}
    if row["import_id"]:
        links["import"] = import_url(row["import_id"])
    if row["backup_id"]:
        links["backup"] = f"{API}/backups/{row['backup_id']}"
    result = row["result"]
    return Operation(
        **{name: row[name] for name in Operation.__struct_fields__ if name not in SHOWN_APART},
        result=msgspec.json.decode(result) if result else None,
        created_by=row["key_id"],
        links=links,
    )


def accepted(
    request: web.Request,
    op: asyncpg.Record,
    *,
    replayed: bool = False,
    plan: Plan | None = None,
    backup: str | None = None,
) -> web.Response:
    request.app[RELAY].wake()
    headers = {"Location": operation_url(op["id"])}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    shown = msgspec.structs.asdict(render_operation(op))
    return respond(Accepted(**shown, plan=plan, backup=backup), status=202, headers=headers)


class OperationKey:
    """`Idempotency-Key` on a request that starts an operation: a retry gets the operation
    the first request started."""

    def __init__(self, request: web.Request, who: Principal, body: bytes = b"") -> None:
        self._request = request
        self._who = who
        self.key = idempotency.idempotency_key(request)
        fingerprint = idempotency.Fingerprint(request)
        fingerprint.update(body)
        self._digest = fingerprint.digest()

    async def replay(self, conn: Conn) -> web.Response | None:
        """The answer to the first request with this key, if there was one (call inside the
        transaction that will start the operation)."""
        if self.key is None:
            return None
        earlier = await idempotency.lock(conn, self._who.id, self.key)
        if earlier is None:
            return None
        if earlier.fingerprint != self._digest or earlier.operation_id is None:
            raise idempotency.reused(self.key)
        op = await conn.fetchrow(
            f"SELECT {operations.COLUMNS} FROM tidegate.operations WHERE id = $1",  # noqa: S608
            earlier.operation_id,
        )
        assert op is not None
        return accepted(self._request, op, replayed=True)

    async def remember(self, conn: Conn, op: asyncpg.Record) -> None:
        if self.key is not None:
            await idempotency.remember(
                conn, self._who.id, self.key, self._digest, operation_id=op["id"]
            )


def _refused(refusal: rollback.Refusal) -> Problem:
    titles = {
        "import-running": "Import still running",
        "nothing-to-roll-back": "Nothing to roll back",
        "import-rolled-back": "Import already rolled back",
        "later-import-running": "A later import is running",
        "rollback-unsupported": "Rollback not possible",
        "lineage-expired": "Rollback no longer possible",
    }
    return Problem(409, refusal.code, titles[refusal.code], refusal.detail, **refusal.extra)


async def _pending_rollback(conn: Conn, import_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {operations.COLUMNS} FROM tidegate.operations WHERE import_id = $1"  # noqa: S608
        " AND kind = 'rollback' AND NOT dry_run AND status = 'pending'",
        import_id,
    )


@routes.post(f"{API}/imports/{{import_id}}/rollback", name="imports.rollback")
async def rollback_import(request: web.Request) -> web.Response:
    """Undo a finished import: `dry_run` says what it would do; conflicts refuse it (409)
    unless `force`. A rollback already under way is answered with its operation."""
    who = require(request, "import")
    force, dry_run = flag(request, FORCE.name), flag(request, DRY_RUN.name)
    key = OperationKey(request, who)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        imp = await visible_import(conn, request)
        if not dry_run and (replayed := await key.replay(conn)) is not None:
            return replayed
        pending = await _pending_rollback(conn, imp["id"])
        if pending is not None:
            return accepted(request, pending)
        table = await request.app[TABLES].get(conn, imp["target_table"])
        refusal = await rollback.refusal(conn, imp, table)
        if refusal is not None:
            raise _refused(refusal)
        found = rollback.Plan()
        if table is not None:
            found = await rollback.plan(conn, imp["id"], table)
        if dry_run:
            preview = RollbackPreview(**msgspec.structs.asdict(found), import_id=imp["id"])
            return respond(preview)
        if found.conflicts and not force:
            raise Problem(
                409,
                "rollback-conflict",
                "Rows changed since the import",
                f"{found.conflicts} rows the import wrote were changed or deleted since;"
                " nothing was changed. Roll back with force=true to overwrite them.",
                **msgspec.to_builtins(found),
            )
        op = await operations.request(
            conn,
            kind="rollback",
            trigger="request",
            import_id=imp["id"],
            force=force,
            key_id=who.id,
            team=who.team,
        )
        await key.remember(conn, op)
    request[AUDIT_DETAIL].update(force=force, delete=found.delete, restore=found.restore)
    return accepted(request, op, plan=found)


@routes.post(f"{API}/imports/{{import_id}}/cancel", name="imports.cancel")
async def cancel_import(request: web.Request) -> web.Response:
    """Stop a running import; what it loaded is rolled back and its slot is freed."""
    who = require(request, "import")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        imp = await visible_import(conn, request)
        version = await imports.cancel_import(
            conn, imp["id"], f"cancelled by key {who.lookup} ({who.name})", by="gateway"
        )
        if version is None:
            raise Problem(
                409,
                "import-finished",
                "Import already finished",
                "Only a running import can be cancelled; roll a finished one back instead.",
            )
        op = await _pending_rollback(conn, imp["id"])
        row = await import_store.get_import(conn, imp["id"], principal_of(request))
    assert row is not None
    IMPORTS_CANCELLED.inc()
    request.app[RELAY].wake()
    body = Cancelled(import_=import_of(row), rollback=render_operation(op) if op else None)
    return respond(body, status=202, headers={"Location": import_url(imp["id"])})


async def _operation_visible(conn: Conn, op: asyncpg.Record, who: Principal) -> bool:
    """An operation on an import is visible with its import, one on a backup with its
    backup (both follow the key's team and tables); any other to its key and team."""
    if op["import_id"] is not None:
        return await import_store.get_import(conn, op["import_id"], who) is not None
    if op["backup_id"] is not None:
        found = await conn.fetchval(
            "SELECT true FROM tidegate.backups"  # noqa: S608
            f" WHERE id = $1 AND {import_store.visible(2, tables='tables')}",
            op["backup_id"],
            *import_store.visibility(who),
        )
        return found is not None
    return (
        who.may("admin")
        or op["key_id"] == who.id
        or (who.team is not None and op["team"] == who.team)
    )


@routes.get(f"{API}/operations/{{operation_id}}", name="operations.read")
async def get_operation(request: web.Request) -> web.Response:
    operation_id = path_id(request, "operation_id", "operation-not-found", "Operation not found")
    request[TARGET] = str(operation_id)
    who = principal_of(request)
    async with request.app[POOL].acquire() as conn:
        op = await conn.fetchrow(
            f"SELECT {operations.COLUMNS} FROM tidegate.operations WHERE id = $1",  # noqa: S608
            operation_id,
        )
        visible = op is not None and await _operation_visible(conn, op, who)
    if not visible:
        raise Problem(404, "operation-not-found", "Operation not found")
    assert op is not None
    return respond(render_operation(op))


def _chunks_kept(imp: asyncpg.Record) -> None:
    """410 if the import's chunk copies, which its failed rows are read from, are gone."""
    if imp["chunks_purged_at"] is not None:
        raise Problem(
            410,
            "chunks-expired",
            "The import's rows are no longer kept",
            f"Its chunks were forgotten on {imp['chunks_purged_at']:%Y-%m-%d}"
            " (TIDEGATE_CHUNK_RETENTION_DAYS, or a purge); retry with the corrected file.",
        )


@routes.get(f"{API}/imports/{{import_id}}/failed", name="imports.failed")
async def export_failed(request: web.Request) -> web.StreamResponse:
    """The rejected rows as in the file, with their line and errors: fix them in a
    spreadsheet and upload the file again (POST .../retry, or a new import)."""
    with Spool() as spool:
        async with request.app[POOL].acquire() as conn:
            imp = await visible_import(conn, request)
            _chunks_kept(imp)
            spool.write(failed_rows.csv_line(failed_rows.header_of(imp)))
            rows = 0
            async with conn.transaction(readonly=True):
                async for cells, line, why in failed_rows.failed_rows(conn, imp):
                    spool.write(failed_rows.csv_line([*cells, str(line), why]))
                    rows += 1
        request[AUDIT_DETAIL]["rows"] = rows
        return await spool.send(
            request,
            {
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="failed-{imp["id"]}.csv"',
                "Tidegate-Source-Encoding": imp["encoding"] or "utf-8",
            },
        )


def _inherited(imp: asyncpg.Record) -> dict[str, str]:
    """The parent's options, as the query parameters that would ask for them."""
    return {
        "validate_only": str(imp["mode"] == "validate_only").lower(),
        "dry_run": str(imp["mode"] == "dry_run").lower(),
        "chunk_size": str(imp["chunk_size"]),
        "auto_retry": str(imp["auto_retry"]),
        "rollback_on_failure": str(imp["rollback_on_failure"]).lower(),
        "atomic": str(imp["atomic"]).lower(),
        **({"on_duplicate": imp["on_duplicate"]} if imp["on_duplicate"] else {}),
    }


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


@routes.post(f"{API}/imports/{{import_id}}/retry", name="imports.retry")
async def retry_import(request: web.Request) -> web.Response:
    """A new import, linked to this one: of the uploaded (corrected) file, or without a
    body of this import's failed rows as they were. Options are the parent's unless the
    query overrides them."""
    async with request.app[POOL].acquire() as conn:
        imp = await visible_import(conn, request)
        if imp["finished_at"] is None:
            raise Problem(
                409, "import-running", "Import still running", "Retry once it has finished."
            )
        upload = request.body_exists
        body = None
        if not upload:
            _chunks_kept(imp)
            data, rows = await failed_rows.failed_csv(conn, imp)
            if rows == 0:
                raise Problem(
                    409, "nothing-to-retry", "No failed rows", "The import has no failed rows."
                )
            body = _once(data)
    table = await find_table(request, imp["target_table"])
    inherited = _inherited(imp)
    if "validate_only" in request.query or "dry_run" in request.query:
        del inherited["validate_only"], inherited["dry_run"]  # the request names the mode
    if "checkpoint_interval" in request.query:
        del inherited["chunk_size"]
    query = {**inherited, **request.query}
    options = msgspec.structs.replace(
        import_options(request, request.app[SETTINGS], table, query), parent_id=imp["id"]
    )
    who = require(request, "validate" if options.mode == "validate_only" else "import")
    return await accept_import(request, table, options, who, upload=upload, body=body)
