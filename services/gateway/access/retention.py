"""Forgetting what the limits no longer need, every few minutes: requests older than the
rate window, idempotency keys older than 24 hours, audit entries older than
`TIDEGATE_AUDIT_RETENTION_DAYS` (0 keeps them forever), and resumable uploads past their
expiry (`TIDEGATE_UPLOAD_EXPIRY_SECONDS`) with their bytes. Any replica may sweep; the
deletes are idempotent."""

from __future__ import annotations

import structlog
from aiohttp import web

from services.gateway.access.guard import WINDOW_SECONDS
from services.gateway.intake import upload_parts
from shared.db import Conn, affected
from shared.service import POOL, SETTINGS, every

log = structlog.get_logger(__name__)

EVERY_SECONDS = 300
BATCH = 10_000  # audit rows per statement, so a long backlog never holds locks for long


async def sweep(conn: Conn, audit_retention_days: int) -> dict[str, int]:
    """Delete what has expired; returns how many rows of each table."""
    gone = {
        "key_requests": await affected(
            conn,
            "DELETE FROM tidegate.key_requests WHERE at < now() - make_interval(secs => $1)",
            WINDOW_SECONDS,
        ),
        "idempotency_keys": await affected(
            conn,
            "DELETE FROM tidegate.idempotency_keys WHERE created_at < now() - interval '24 hours'",
        ),
        "uploads": await upload_parts.delete_expired(conn),
        "audit_log": 0,
    }
    while audit_retention_days > 0:
        deleted = await affected(
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


async def _sweep(app: web.Application) -> None:
    async with app[POOL].acquire() as conn:
        gone = await sweep(conn, app[SETTINGS].audit_retention_days)
    if any(gone.values()):
        log.info("expired rows deleted", **gone)


retention_context = every(EVERY_SECONDS, _sweep, "retention sweep")
