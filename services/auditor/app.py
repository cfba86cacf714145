"""Wiring of the auditor: one consumer loop over every chunk topic."""

from __future__ import annotations

from aiohttp import web

from services.auditor import view
from services.auditor.handlers import ImportAuditor
from shared import topics
from shared.config import Settings
from shared.kafka import ConsumerLoop
from shared.service import POOL, PUBLISHER, SETTINGS, consumer_context, service_app


def _consumer(app: web.Application) -> ConsumerLoop[view.AuditedEvent]:
    auditor = ImportAuditor(app[POOL])
    return ConsumerLoop(
        service="auditor",
        bootstrap=app[SETTINGS].kafka_bootstrap_servers,
        group="tidegate-auditor",
        topics=[topics.CHUNK_SUBMITTED, topics.CHUNK_VALIDATED, topics.CHUNK_LOADED],
        handler=auditor.handle,
        decode=view.decode,
        publisher=app[PUBLISHER],
        max_records=100,
    )


def create_app(settings: Settings) -> web.Application:
    app = service_app(settings)
    app.cleanup_ctx.append(consumer_context(_consumer))
    return app
