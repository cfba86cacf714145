"""Wiring of the validator: chunk-submitted → chunk-validated."""

from __future__ import annotations

from aiohttp import web

from services.validator.handlers import ChunkValidator
from shared import events, topics
from shared.catalog import TableCache
from shared.config import Settings
from shared.rulebook import RuleBook
from shared.service import POOL, worker_app


def create_app(settings: Settings) -> web.Application:
    def handler(app: web.Application) -> ChunkValidator:
        return ChunkValidator(
            app[POOL],
            TableCache(settings.allowed_schemas),
            RuleBook(settings.rules_dir),
            settings.allowed_schemas,
            max_rows=settings.max_chunk_size,
            backoff_seconds=settings.retry_backoff_seconds,
        )

    return worker_app(
        settings,
        topics=topics.CONSUMED_BY["validator"],
        decode=events.decode,
        make_handler=lambda app: handler(app).handle,
    )
