"""Forgetting what the limits no longer need, every few minutes: requests older than the
rate window, idempotency keys older than 24 hours, and audit entries older than
`TIDEGATE_AUDIT_RETENTION_DAYS` (0 keeps them forever). Any replica may sweep; the deletes
are idempotent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from services.gateway.access import WINDOW_SECONDS
from shared.db import Conn
from shared.failures import is_transient
from shared.service import POOL, SETTINGS

log = structlog.get_logger(__name__)

EVERY_SECONDS = 300
BATCH = 10_000  # audit rows per statement, so a long backlog never holds locks for long


async def _delete(conn: Conn, sql: str, *args: object) -> int:
    status = await conn.execute(sql, *args)  # "DELETE <n>"
    return int(status.split()[-1])


async def sweep(conn: Conn, audit_retention_days: int) -> dict[str, int]:
    """Delete what has expired; returns how many rows of each table."""
    gone = {
        "key_requests": await _delete(
            conn,
            "DELETE FROM tidegate.key_requests WHERE at < now() - make_interval(secs => $1)",
            WINDOW_SECONDS,
        ),
        "idempotency_keys": await _delete(
            conn,
            "DELETE FROM tidegate.idempotency_keys WHERE created_at < now() - interval '24 hours'",
        ),
        "audit_log": 0,
    }
    while audit_retention_days > 0:
        deleted = await _delete(
            conn,
            "DELETE FROM tidegate.audit_log WHERE id IN (SELECT id FROM tidegate.audit_log"
            " WHERE at < now() - make_interval(days => $1) LIMIT $2)",
            audit_retention_days,
            BATCH,
        )
        gone["audit_log"] += deleted
        if deleted < BATCH:
            break
    return gone


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    days = app[SETTINGS].audit_retention_days

    async def run() -> None:
        while True:
            try:
                async with app[POOL].acquire() as conn:
                    gone = await sweep(conn, days)
                if any(gone.values()):
                    log.info("expired rows deleted", **gone)
            except Exception as exc:  # never ends the sweep: the next one may succeed
                if is_transient(exc):
                    log.warning("retention sweep failed; next try in a while", error=repr(exc))
                else:
                    log.exception("retention sweep failed; next try in a while")
            await asyncio.sleep(EVERY_SECONDS)

    task = asyncio.create_task(run(), name="retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
