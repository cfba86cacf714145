"""The retention job (shared/retention.py): every RETENTION_EVERY_SECONDS one auditor (a
session advisory lock elects it) forgets what finished imports no longer need to keep,
for a bounded time per pass."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from services.auditor.metrics import RETAINED_DELETED
from shared.failures import is_transient
from shared.retention import Retention, sweep
from shared.service import POOL, SETTINGS

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


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    async def run() -> None:
        while True:
            try:
                await retention_pass(app)
            except Exception as exc:  # never ends the job: the next pass may succeed
                if is_transient(exc):
                    log.warning("retention pass failed; next in a while", error=repr(exc))
                else:
                    log.exception("retention pass failed; next in a while")
            await asyncio.sleep(RETENTION_EVERY_SECONDS)

    task = asyncio.create_task(run(), name="retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
