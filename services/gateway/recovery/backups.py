"""Backups of target tables: create, list, read, restore, delete.

Roles: admins and data managers create and list backups (a data manager sees those of
their key and team); restoring and deleting are for admins only, since a restore replaces
a table's rows for everyone. The loader does the work (operations); every answer that
starts one is 202 with the operation to follow.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web

from services.gateway.access.guard import AUDIT_DETAIL, TARGET, principal_of, require
from services.gateway.imports.resources import API, respond
from services.gateway.intake import import_store
from services.gateway.params import Param, int_param, path_id
from services.gateway.problems import Problem
from services.gateway.recovery.rollbacks import OperationKey, accepted
from services.gateway.tables.lookup import find_table
from shared import imports, operations
from shared.api_keys import Principal
from shared.events import OperationKind
from shared.key_store import TableName
from shared.service import POOL

routes = web.RouteTableDef()
MAX_TABLES = 50
MAX_REASON = 500
BACKUPS_LIMIT = Param(
    name="limit", schema={"type": "integer", "minimum": 1, "maximum": 200}, description="size"
)
SHOWN_APART = frozenset({"tables", "row_counts", "links", "created_by"})
COLUMNS = (
    "id, tables, status, reason, import_id, file_name, size_bytes, sha256, server_version,"
    " row_counts, error, key_id, team, created_at, completed_at, deleted_at"
)


class BackupRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of POST /backups (its OpenAPI schema is derived from this)."""

    tables: Annotated[list[TableName], msgspec.Meta(min_length=1, max_length=MAX_TABLES)]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)] | None = None


def backup_url(backup_id: uuid.UUID | str) -> str:
    return f"{API}/backups/{backup_id}"


class Backup(msgspec.Struct, frozen=True, kw_only=True):
    """A backup as the API shows it."""

    id: uuid.UUID
    tables: list[str]
    status: Literal["pending", "completed", "failed", "deleted"]
    reason: str | None
    import_id: uuid.UUID | None  # the import it was taken before
    file_name: str | None
    size_bytes: int | None  # while pending: written so far
    sha256: str | None
    server_version: str | None
    row_counts: dict[str, int] | None
    error: str | None
    created_by: uuid.UUID | None  # the key that asked (before an import: the import's)
    created_at: datetime
    completed_at: datetime | None
    deleted_at: datetime | None
    links: dict[str, str]


class Backups(msgspec.Struct, kw_only=True):
    items: list[Backup]  # newest first


def render_backup(row: asyncpg.Record) -> Backup:
    counts = row["row_counts"]
    body = Backup(
        **{name: row[name] for name in Backup.__struct_fields__ if name not in SHOWN_APART},
        tables=list(row["tables"]),
        created_by=row["key_id"],
        row_counts=msgspec.json.decode(counts) if counts else None,
        links={"self": backup_url(row["id"]), "restore": f"{backup_url(row['id'])}/restore"},
    )
    return body


async def _backup(request: web.Request) -> asyncpg.Record:
    backup_id = path_id(request, "backup_id", "backup-not-found", "Backup not found")
    request[TARGET] = str(backup_id)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM tidegate.backups WHERE id = $1"  # noqa: S608
            f" AND {import_store.visible(2, tables='tables')}",
            backup_id,
            *import_store.visibility(principal_of(request)),
        )
    if row is None or row["status"] == "deleted":
        raise Problem(404, "backup-not-found", "Backup not found")
    found: asyncpg.Record = row
    return found


@routes.post(f"{API}/backups", name="backups.create")
async def create_backup(request: web.Request) -> web.Response:
    who = require(request, "import")
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw, type=BackupRequest)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid-body", "Invalid request body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed-body", "Malformed request body", str(exc)) from None
    names = list(
        dict.fromkeys([(await find_table(request, t)).qualified_name for t in body.tables])
    )
    key = OperationKey(request, who, raw)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if (replayed := await key.replay(conn)) is not None:
            return replayed
        backup_id, op = await operations.request_backup(
            conn, tables=names, reason=body.reason, trigger="request", key_id=who.id, team=who.team
        )
        await key.remember(conn, op)
    request[TARGET] = str(backup_id)
    request[AUDIT_DETAIL].update(tables=names, reason=body.reason)
    return accepted(request, op, backup=backup_url(backup_id))


@routes.get(f"{API}/backups", name="backups.list")
async def list_backups(request: web.Request) -> web.Response:
    """Newest first (deleted backups are not listed)."""
    limit = int_param(request, BACKUPS_LIMIT.name, 50, *BACKUPS_LIMIT.bounds)
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM tidegate.backups WHERE status <> 'deleted'"  # noqa: S608
            f" AND {import_store.visible(1, tables='tables')}"
            " ORDER BY created_at DESC, id DESC LIMIT $4",
            *import_store.visibility(principal_of(request)),
            limit,
        )
    return respond(Backups(items=[render_backup(r) for r in rows]))


@routes.get(f"{API}/backups/{{backup_id}}", name="backups.read")
async def get_backup(request: web.Request) -> web.Response:
    return respond(render_backup(await _backup(request)))


@routes.post(f"{API}/backups/{{backup_id}}/restore", name="backups.restore")
async def restore_backup(request: web.Request) -> web.Response:
    """Replace the tables' rows with the backup's, in one transaction, once the file's
    checksum is verified; refused while an import into one of them runs."""
    who = require(request, "admin")
    backup = await _backup(request)
    if backup["status"] != "completed":
        raise Problem(
            409,
            "backup-not-restorable",
            "Backup not complete",
            f"The backup is {backup['status']}.",
        )
    return await _start(request, who, backup, "restore")


@routes.delete(f"{API}/backups/{{backup_id}}", name="backups.delete")
async def delete_backup(request: web.Request) -> web.Response:
    who = require(request, "admin")
    return await _start(request, who, await _backup(request), "delete_backup")


async def _start(
    request: web.Request, who: Principal, backup: asyncpg.Record, kind: OperationKind
) -> web.Response:
    """Start a restore or a deletion of `backup` (once per Idempotency-Key)."""
    key = OperationKey(request, who)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if (replayed := await key.replay(conn)) is not None:
            return replayed
        running = await imports.running_into(conn, backup["tables"])
        if kind == "restore" and running:
            raise Problem(
                409,
                "import-running",
                "An import is running",
                "An import into these tables is running; restore when it has finished.",
                running=[str(i) for i in running],
            )
        op = await operations.request(
            conn, kind=kind, trigger="request", backup_id=backup["id"], key_id=who.id, team=who.team
        )
        await key.remember(conn, op)
    return accepted(request, op)
