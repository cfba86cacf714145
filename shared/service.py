"""Wiring common to every service: an aiohttp app with `/healthz` and `/metrics`, and the
pool, producer and consumer loops as cleanup contexts (aiohttp's "complex applications").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from shared.config import Settings
from shared.db import open_pool
from shared.kafka import (
    ConsumerLoop,
    Decode,
    Delivery,
    E,
    EventPublisher,
    Outgoing,
    ensure_topics,
    open_producer,
)
from shared.logging import configure_logging
from shared.metrics import metrics_handler

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
PUBLISHER = web.AppKey("publisher", EventPublisher)
CONSUMERS = web.AppKey("consumers", list[ConsumerLoop[Any]])


def service_app(settings: Settings, **app_options: Any) -> web.Application:
    """A bare service: settings, health and metrics; the caller adds its contexts and routes."""
    app = web.Application(**app_options)
    app[SETTINGS] = settings
    app[CONSUMERS] = []
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(broker)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_pool(
        settings.database_url, application_name=f"tidegate-{settings.service_name}"
    ) as pool:
        app[POOL] = pool
        yield


async def broker(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_partitions)
    async with open_producer(settings.kafka_bootstrap_servers) as producer:
        app[PUBLISHER] = EventPublisher(producer, source=f"/tidegate/{settings.service_name}")
        yield


def worker_app(
    settings: Settings,
    *,
    topics: Sequence[str],
    decode: Decode[E],
    make_handler: Callable[
        [web.Application], Callable[[E, Delivery], Awaitable[Sequence[Outgoing]]]
    ],
    max_records: int = 20,
) -> web.Application:
    """A service that applies the events of `topics` in consumer group `tidegate-<service>`.
    On stop, its consumer loop finishes the event in hand and commits before exiting."""
    app = service_app(settings)

    async def consumer(app: web.Application) -> AsyncIterator[None]:
        loop = ConsumerLoop(
            service=settings.service_name,
            bootstrap=settings.kafka_bootstrap_servers,
            group=f"tidegate-{settings.service_name}",
            topics=topics,
            handler=make_handler(app),
            decode=decode,
            publisher=app[PUBLISHER],
            max_records=max_records,
        )
        app[CONSUMERS].append(loop)
        task = asyncio.create_task(loop.run(), name=f"consumer-{settings.service_name}")
        yield
        loop.stop()
        await task

    app.cleanup_ctx.append(consumer)
    return app


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers and every consumer loop is running, else 503."""
    checks: dict[str, bool] = {}
    try:
        async with request.app[POOL].acquire(timeout=2) as conn:
            checks["database"] = await conn.fetchval("SELECT true") is True
    except (OSError, TimeoutError, asyncpg.PostgresError):
        checks["database"] = False
    for loop in request.app[CONSUMERS]:
        checks[f"consumer:{loop.service}"] = loop.running
    healthy = all(checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


def run_service(settings: Settings, create_app: Callable[[Settings], web.Application]) -> None:
    """Serve one service until SIGINT/SIGTERM; cleanup contexts drain the work in hand."""
    configure_logging(settings.log_level, settings.service_name)
    log.info("starting", host=settings.http_host, port=settings.http_port)
    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        print=None,
        access_log=None,
        shutdown_timeout=30,
    )
