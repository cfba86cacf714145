"""Wiring of the loader: the only writer of target tables."""

from __future__ import annotations

from aiohttp import web

from services.loader.handlers import ChunkLoader
from shared import events, topics
from shared.catalog import TableCache
from shared.config import Settings
from shared.kafka import ConsumerLoop
from shared.service import POOL, PUBLISHER, SETTINGS, consumer_context, service_app


def _consumer(app: web.Application) -> ConsumerLoop[events.Event]:
    settings = app[SETTINGS]
    loader = ChunkLoader(app[POOL], TableCache(settings.allowed_schemas))
    return ConsumerLoop(
        service="loader",
        bootstrap=settings.kafka_bootstrap_servers,
        group="tidegate-loader",
        topics=[topics.CHUNK_VALIDATED],
        handler=loader.handle,
        decode=events.decode,
        publisher=app[PUBLISHER],
    )


def create_app(settings: Settings) -> web.Application:
    app = service_app(settings)
    app.cleanup_ctx.append(consumer_context(_consumer))
    return app
