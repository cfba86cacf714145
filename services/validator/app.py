"""Wiring of the validator: chunk-submitted → chunk-validated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from services.validator.handlers import ChunkValidator
from services.validator.verify import Verifier
from shared import events, topics
from shared.catalog import TableCache
from shared.config import Settings
from shared.events import Event, VerificationRequested
from shared.kafka.consumer import BatchHandler
from shared.kafka.records import Delivery, Outgoing
from shared.rulebook import RuleBook
from shared.service import POOL, worker_app


def create_app(settings: Settings) -> web.Application:
    made: dict[web.Application, tuple[ChunkValidator, Verifier]] = {}

    def parts(app: web.Application) -> tuple[ChunkValidator, Verifier]:
        """One validator (its key claims in memory) for both handlers."""
        if app not in made:
            rulebook = RuleBook(settings.rules_dir)
            chunks = ChunkValidator(
                app[POOL],
                TableCache(settings.allowed_schemas),
                rulebook,
                settings.allowed_schemas,
                max_rows=settings.max_chunk_size,
                backoff_seconds=settings.retry_backoff_seconds,
            )
            made[app] = chunks, Verifier(app[POOL], rulebook, settings.allowed_schemas)
        return made[app]

    def handler(app: web.Application) -> Callable[[Event, Delivery], Awaitable[list[Outgoing]]]:
        chunks, verifier = parts(app)

        async def handle(event: Event, delivery: Delivery) -> list[Outgoing]:
            if isinstance(event, VerificationRequested):
                return await verifier.handle(event)
            return await chunks.handle(event, delivery)

        return handle

    def batch_handler(app: web.Application) -> BatchHandler[Event]:
        chunks, one = parts(app)[0], handler(app)
        return lambda items: chunks.handle_batch(items, one)

    return worker_app(
        settings,
        groups=topics.CONSUMER_GROUPS["validator"],
        decode=events.decode,
        make_handler=handler,
        make_batch_handler=batch_handler,
    )
