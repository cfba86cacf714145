"""operation-requested → the operation done once → operation-finished.

The operation's row is locked while it runs and its outcome is recorded in the same
transaction as its effect, so a redelivered command only re-announces the outcome (a
backup or a restore, whose effect is outside that transaction, is written so that doing
it again gives the same result)."""

from __future__ import annotations

import uuid

import asyncpg
import structlog

from services.loader import rollback
from services.loader.backups import BackupStore, Outcome
from services.loader.metrics import OPERATION_SECONDS, OPERATIONS_FINISHED
from shared import operations, topics
from shared.catalog import TableCache
from shared.db import Conn
from shared.errors import InvalidEvent
from shared.events import OperationRequested
from shared.kafka.records import Outgoing

log = structlog.get_logger(__name__)


class OperationRunner:
    def __init__(self, pool: asyncpg.Pool, tables: TableCache, backups: BackupStore) -> None:
        self._pool = pool
        self._tables = tables
        self._backups = backups

    async def handle(self, event: OperationRequested) -> list[Outgoing]:
        async with self._pool.acquire() as conn, conn.transaction():
            op = await conn.fetchrow(
                f"SELECT {operations.COLUMNS} FROM tidegate.operations WHERE id = $1 FOR UPDATE",
                event.operation_id,
            )
            if op is None or op["kind"] != event.kind:
                raise InvalidEvent(f"operation {event.operation_id} ({event.kind}) is not known")
            if op["status"] == "pending":
                with (
                    structlog.contextvars.bound_contextvars(
                        operation_id=str(op["id"]), kind=op["kind"]
                    ),
                    OPERATION_SECONDS.labels(op["kind"]).time(),
                ):
                    status, result, error = await self._run(conn, op)
                    log.info("operation finished", status=status, error=error)
                await operations.finish(conn, op["id"], status, result, error)
                OPERATIONS_FINISHED.labels(op["kind"], status).inc()
                op = await conn.fetchrow(
                    f"SELECT {operations.COLUMNS} FROM tidegate.operations WHERE id = $1", op["id"]
                )
                assert op is not None
        if op["kind"] in ("backup", "delete_backup"):
            await self._backups.remove_deleted_files()  # committed: their files may go
        finished = operations.finished_event(op)
        return [(topics.OPERATION_FINISHED, finished, str(finished.import_id))]

    async def before_first_chunk(
        self, conn: Conn, import_id: uuid.UUID, operation_id: uuid.UUID
    ) -> str | None:
        """The backup an import asked for (`?backup=true`), taken before its first chunk is
        loaded (once: later chunks find it done); returns why the chunk must not be loaded
        if the backup failed."""
        await self.handle(
            OperationRequested(import_id=import_id, operation_id=operation_id, kind="backup")
        )
        op = await conn.fetchrow(
            "SELECT status, error FROM tidegate.operations WHERE id = $1", operation_id
        )
        assert op is not None
        if op["status"] != "completed":
            return f"the backup taken before the import failed: {op['error']}"
        return None

    async def _run(self, conn: Conn, op: asyncpg.Record) -> Outcome:
        match op["kind"]:
            case "rollback":
                return await rollback.run(conn, self._tables, op)
            case "backup":
                return await self._backups.create(conn, op["backup_id"])
            case "restore":
                return await self._backups.restore(conn, op["backup_id"])
            case "delete_backup":
                return await self._backups.delete(conn, op["backup_id"])
        raise InvalidEvent(f"unknown operation kind {op['kind']!r}")
