"""Wiring of the validator: one consumer loop on chunk-submitted."""

from __future__ import annotations

from aiohttp import web

from services.validator.handlers import ChunkValidator
from shared import events, topics
from shared.catalog import TableCache
from shared.config import Settings
from shared.kafka import ConsumerLoop
from shared.service import POOL, PUBLISHER, SETTINGS, consumer_context, service_app


def _consumer(app: web.Application) -> ConsumerLoop[events.Event]:
    settings = app[SETTINGS]
    validator = ChunkValidator(
        app[POOL],
        TableCache(settings.allowed_schemas),
        max_rows=settings.max_chunk_size,
    )
    return ConsumerLoop(
        service="validator",
        bootstrap=settings.kafka_bootstrap_servers,
        group="tidegate-validator",
        topics=[topics.CHUNK_SUBMITTED],
        handler=validator.handle,
        decode=events.decode,
        publisher=app[PUBLISHER],
    )


def create_app(settings: Settings) -> web.Application:
    app = service_app(settings)
    app.cleanup_ctx.append(consumer_context(_consumer))
    return app
