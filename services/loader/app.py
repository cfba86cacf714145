"""Wiring of the loader, the only writer of target tables: chunk-validated → chunk-loaded,
and operation-requested (rollback, backup, restore) → operation-finished."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from services.loader.backups import BackupStore
from services.loader.handlers import ChunkLoader
from services.loader.operations import OperationRunner
from shared import events, topics
from shared.catalog import TableCache
from shared.config import Settings
from shared.events import Event, OperationRequested
from shared.kafka.consumer import BatchHandler
from shared.kafka.records import Delivery, Outgoing
from shared.service import POOL, worker_app


def create_app(settings: Settings) -> web.Application:
    made: dict[web.Application, tuple[ChunkLoader, OperationRunner]] = {}

    def parts(app: web.Application) -> tuple[ChunkLoader, OperationRunner]:
        """One loader and one operation runner (one table cache) for both handlers."""
        if app not in made:
            tables = TableCache(settings.allowed_schemas)
            runner = OperationRunner(app[POOL], tables, BackupStore(app[POOL], settings))
            chunks = ChunkLoader(
                app[POOL],
                tables,
                settings.retry_backoff_seconds,
                runner.before_first_chunk,
                max_rows=settings.load_batch_rows,
            )
            made[app] = chunks, runner
        return made[app]

    def handler(app: web.Application) -> Callable[[Event, Delivery], Awaitable[list[Outgoing]]]:
        chunks, runner = parts(app)

        async def handle(event: Event, delivery: Delivery) -> list[Outgoing]:
            if isinstance(event, OperationRequested):
                return await runner.handle(event)
            return await chunks.handle(event, delivery)

        return handle

    def batch_handler(app: web.Application) -> BatchHandler[Event]:
        chunks, one = parts(app)[0], handler(app)
        return lambda items: chunks.handle_batch(items, one)

    return worker_app(
        settings,
        groups=topics.CONSUMER_GROUPS["loader"],
        decode=events.decode,
        make_handler=handler,
        make_batch_handler=batch_handler,
    )
