"""Wiring of the auditor: every chunk topic → import state → import-status events, and the
reconciler that re-drives imports that stop moving."""

from __future__ import annotations

from aiohttp import web

from services.auditor import view
from services.auditor.handlers import ImportAuditor
from services.auditor.reconciler import reconciler_context
from services.auditor.retention import retention_context
from shared import topics
from shared.config import Settings
from shared.service import POOL, worker_app


def create_app(settings: Settings) -> web.Application:
    app = worker_app(
        settings,
        groups=topics.CONSUMER_GROUPS["auditor"],
        decode=view.decode,
        make_handler=lambda app: ImportAuditor(app[POOL]).handle,
        make_batch_handler=lambda app: ImportAuditor(app[POOL]).handle_batch,
        max_records=100,
    )
    app.cleanup_ctx.append(reconciler_context)
    app.cleanup_ctx.append(retention_context)
    return app
