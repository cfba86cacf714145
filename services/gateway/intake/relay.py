"""The outbox relay: publishes stored events until the broker acknowledges each.

It wakes when an import commits, and polls as well, so events written before a crash
(or by another gateway replica) are published too. Several relays share the work by key
(an import): one relay at a time holds a key and publishes its events in the order they
were stored, so chunks reach the validator in sequence whatever the number of gateways.
A redelivered event is recognised by its id downstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import structlog
from aiohttp import web

from services.gateway.intake import import_store
from services.gateway.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED
from shared.failures import is_transient
from shared.kafka.producer import EventPublisher
from shared.service import POOL, PUBLISHER, SETTINGS

log = structlog.get_logger(__name__)

BATCH = 64


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, publisher: EventPublisher, poll_seconds: float) -> None:
        self._pool = pool
        self._publisher = publisher
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many events the broker acknowledged."""
        async with self._pool.acquire() as conn, conn.transaction():
            batch = await import_store.claim_unpublished(conn, BATCH)
            if not batch:
                return 0
            acks = await self._publisher.send_stored([dict(row) for row in batch])
            await asyncio.gather(*acks)
            await import_store.mark_published(conn, [row["id"] for row in batch])
        OUTBOX_PUBLISHED.inc(len(batch))
        return len(batch)

    async def run(self) -> None:
        delay = self._poll
        while not self._stopping:
            try:
                while await self.publish_pending() == BATCH and not self._stopping:
                    pass
                async with self._pool.acquire() as conn:
                    OUTBOX_PENDING.set(await import_store.count_unpublished(conn))
                delay = self._poll
            except Exception as exc:  # the relay must outlive any failure, or imports wait
                if is_transient(exc):
                    log.warning("outbox relay failed; will retry", error=repr(exc))
                else:
                    log.exception("outbox relay failed; will retry")
                delay = min(delay * 2, 10.0)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            self._wake.clear()


RELAY = web.AppKey("relay", OutboxRelay)


async def relay_context(app: web.Application) -> AsyncIterator[None]:
    relay = OutboxRelay(app[POOL], app[PUBLISHER], app[SETTINGS].outbox_poll_seconds)
    app[RELAY] = relay
    task = asyncio.create_task(relay.run(), name="outbox-relay")
    yield
    relay.stop()
    await task
