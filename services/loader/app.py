"""Wiring of the loader, the only writer of target tables: chunk-validated → chunk-loaded."""

from __future__ import annotations

from aiohttp import web

from services.loader.handlers import ChunkLoader
from shared import events, topics
from shared.catalog import TableCache
from shared.config import Settings
from shared.service import POOL, worker_app


def create_app(settings: Settings) -> web.Application:
    return worker_app(
        settings,
        topics=[topics.CHUNK_VALIDATED],
        decode=events.decode,
        make_handler=lambda app: (
            ChunkLoader(app[POOL], TableCache(settings.allowed_schemas)).handle
        ),
    )
