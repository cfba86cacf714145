"""Operations: work for the loader that is not a chunk (undo an import, back up or restore
tables, delete a backup).

Whoever asks (the gateway for a person, the auditor and the reconciler for an import that
failed) records the operation and its command event in one transaction: the command waits
in the outbox until the relay publishes it, and the reconciler sends it again if it is not
done in time. The loader does the work once, recording the outcome in the same
transaction as the effect.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import asyncpg
import msgspec

from shared import topics
from shared.db import Conn
from shared.events import (
    OperationFinished,
    OperationKind,
    OperationRequested,
    encode,
    event_id,
    event_type,
)

Trigger = Literal["request", "cancel", "failure", "pre_import"]

COLUMNS = (
    "id, kind, trigger, import_id, backup_id, force, dry_run, status, result, error, attempts,"
    " key_id, team, created_at, updated_at, finished_at"
)


async def request(
    conn: Conn,
    *,
    kind: OperationKind,
    trigger: Trigger,
    import_id: uuid.UUID | None = None,
    backup_id: uuid.UUID | None = None,
    force: bool = False,
    dry_run: bool = False,
    key_id: uuid.UUID | None = None,
    team: str | None = None,
) -> asyncpg.Record:
    """Record an operation and queue its command; returns the operation's row."""
    operation_id = uuid.uuid4()
    row = await conn.fetchrow(
        "INSERT INTO tidegate.operations"
        " (id, kind, trigger, import_id, backup_id, force, dry_run, key_id, team)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}",
        operation_id,
        kind,
        trigger,
        import_id,
        backup_id,
        force,
        dry_run,
        key_id,
        team,
    )
    assert row is not None
    command = OperationRequested(
        import_id=import_id or operation_id, operation_id=operation_id, kind=kind
    )
    await conn.execute(
        "INSERT INTO tidegate.outbox (event_id, event_type, topic, key, payload, import_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        event_id(command),
        event_type(command),
        topics.OPERATIONS,
        str(command.import_id),  # one partition per import: its operations run in order
        encode(command),
        import_id,
    )
    return row


async def rollback_after_failure(conn: Conn, import_id: uuid.UUID, trigger: Trigger) -> None:
    """An import ended failed or cancelled: undo what it loaded, if it loads at all and
    (for a failure) asks for it. Nothing is requested twice."""
    wanted = await conn.fetchval(
        "SELECT mode = 'import' AND (rollback_on_failure OR atomic OR $2 = 'cancel')"
        " AND NOT EXISTS (SELECT 1 FROM tidegate.operations o WHERE o.import_id = i.id"
        "  AND o.kind = 'rollback' AND NOT o.dry_run AND o.status IN ('pending', 'completed'))"
        " FROM tidegate.imports i WHERE id = $1",
        import_id,
        trigger,
    )
    if wanted:
        await request(conn, kind="rollback", trigger=trigger, import_id=import_id)


async def finish(
    conn: Conn,
    operation_id: uuid.UUID,
    status: str,
    result: dict[str, Any],
    error: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE tidegate.operations SET status = $2, result = $3, error = $4,"
        " finished_at = now(), updated_at = now() WHERE id = $1",
        operation_id,
        status,
        msgspec.json.encode(result).decode(),
        error,
    )


def finished_event(row: asyncpg.Record | dict[str, Any]) -> OperationFinished:
    """The event announcing a finished operation (again, on a redelivery)."""
    result = row["result"]
    return OperationFinished(
        import_id=row["import_id"] or row["id"],
        operation_id=row["id"],
        kind=row["kind"],
        status=row["status"],
        error=row["error"],
        result=msgspec.json.decode(result) if isinstance(result, str) else (result or {}),
    )


async def stale(conn: Conn, stall_seconds: float) -> list[asyncpg.Record]:
    """Pending operations untouched for `stall_seconds`, with their stored command, locked
    until the transaction ends. One the loader is running holds its row lock: it is in
    hand, not lost, and is skipped (never waited for). Call inside a transaction."""
    return await conn.fetch(
        "SELECT o.id, o.import_id, b.event_id, b.event_type, b.topic, b.key, b.payload,"
        " b.created_at FROM tidegate.operations o"
        " JOIN tidegate.outbox b ON b.event_id = 'operation:' || o.id || ':requested'"
        " WHERE o.status = 'pending' AND o.updated_at < now() - make_interval(secs => $1)"
        " ORDER BY o.updated_at LIMIT 100 FOR UPDATE OF o SKIP LOCKED",
        stall_seconds,
    )


async def touch(conn: Conn, operation_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE tidegate.operations SET attempts = attempts + 1, updated_at = now() WHERE id = $1",
        operation_id,
    )


async def request_backup(
    conn: Conn,
    *,
    tables: list[str],
    reason: str | None,
    trigger: Trigger,
    import_id: uuid.UUID | None = None,
    key_id: uuid.UUID | None = None,
    team: str | None = None,
) -> tuple[uuid.UUID, asyncpg.Record]:
    """Record a backup of `tables` (before `import_id`, if given) and the operation that
    takes it; returns (backup id, operation row)."""
    backup_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO tidegate.backups (id, tables, reason, import_id, key_id, team)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        backup_id,
        tables,
        reason,
        import_id,
        key_id,
        team,
    )
    op = await request(
        conn, kind="backup", trigger=trigger, backup_id=backup_id, key_id=key_id, team=team
    )
    return backup_id, op
