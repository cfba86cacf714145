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
from shared.kafka.records import Delivery, Outgoing
from shared.service import POOL, worker_app


def create_app(settings: Settings) -> web.Application:
    def make_handler(
        app: web.Application,
    ) -> Callable[[Event, Delivery], Awaitable[list[Outgoing]]]:
        tables = TableCache(settings.allowed_schemas)
        runner = OperationRunner(app[POOL], tables, BackupStore(app[POOL], settings))
        chunks = ChunkLoader(
            app[POOL], tables, settings.retry_backoff_seconds, runner.before_first_chunk
        )

        async def handle(event: Event, delivery: Delivery) -> list[Outgoing]:
            if isinstance(event, OperationRequested):
                return await runner.handle(event)
            return await chunks.handle(event, delivery)

        return handle

    return worker_app(
        settings,
        groups=topics.CONSUMER_GROUPS["loader"],
        decode=events.decode,
        make_handler=make_handler,
    )
