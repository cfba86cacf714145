"""The retention job (shared/retention.py): every RETENTION_EVERY_SECONDS one auditor (a
session advisory lock elects it) forgets what finished imports no longer need to keep,
for a bounded time per pass."""

from __future__ import annotations

import structlog
from aiohttp import web

from services.auditor.metrics import RETAINED_DELETED
from shared.retention import Retention, sweep
from shared.service import POOL, SETTINGS, every

log = structlog.get_logger(__name__)

RETENTION_EVERY_SECONDS = 300.0
RETENTION_LOCK = 0x7467_7274  # any fixed number: one auditor sweeps at a time
PASS_SECONDS = 10.0


async def retention_pass(app: web.Application) -> None:
    async with app[POOL].acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK):
            return
        try:
            gone = await sweep(conn, Retention.of(app[SETTINGS]), PASS_SECONDS)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)
    for table, count in gone.items():
        RETAINED_DELETED.labels(table).inc(count)
    if gone:
        log.info("expired records forgotten", **gone)


retention_context = every(RETENTION_EVERY_SECONDS, retention_pass, "retention pass")
