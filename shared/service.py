"""Wiring common to every service: an aiohttp app with `/healthz`, `/readyz` and `/metrics`,
and the pool, producer and consumer loops as cleanup contexts (aiohttp's "complex
applications").

`/healthz` is liveness: cheap, 503 only if a consumer loop has died (restart the process).
`/readyz` is readiness and progress: 503 unless the database and the broker answer and every
consumer has joined its group and has not sat on waiting work for `stall_seconds`; the
progress checks a service adds (the auditor: imports stuck after a re-drive) are reported
as status "degraded".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import asyncpg
import msgspec
import structlog
from aiohttp import web
from aiokafka.errors import KafkaError

from shared import journal
from shared.config import Settings
from shared.db import open_pool
from shared.failures import is_transient
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import BatchHandler, ConsumerLoop, Decode, E
from shared.kafka.producer import EventPublisher, open_producer
from shared.kafka.records import Delivery, Outgoing
from shared.logging import configure_logging
from shared.metrics import metrics_handler

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
PUBLISHER = web.AppKey("publisher", EventPublisher)
CONSUMERS = web.AppKey("consumers", list[ConsumerLoop[Any]])
CONSUMER_TASKS = web.AppKey("consumer_tasks", list[asyncio.Task[None]])
# Progress checks a service adds to `/readyz`: each returns (name, ok, detail). They are
# reported (status "degraded") without making the service unready: the service itself works.
Check = Callable[[web.Application], Awaitable[tuple[str, bool, Any]]]
READINESS = web.AppKey("readiness", list[Check])
SERVES_CLIENTS = web.AppKey("serves_clients", bool)


def service_app(
    settings: Settings, *, serves_clients: bool = False, **app_options: Any
) -> web.Application:
    """A bare service: settings, health and metrics; the caller adds its contexts and routes.
    A service that `serves_clients` bounds its pool: a connection is waited for at most
    `db_acquire_seconds`, and the server ends a transaction idle `idle_transaction_seconds`."""
    app = web.Application(**app_options)
    app[SETTINGS] = settings
    app[SERVES_CLIENTS] = serves_clients
    app[CONSUMERS] = []
    app[CONSUMER_TASKS] = []
    app[READINESS] = []
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(broker)
    app.cleanup_ctx.append(heartbeat)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    bounded = app[SERVES_CLIENTS]
    async with open_pool(
        settings.database_url,
        application_name=f"tidegate-{settings.service_name}",
        lock_timeout_ms=round(settings.lock_timeout_seconds * 1000),
        acquire_timeout=settings.db_acquire_seconds if bounded else None,
        idle_in_transaction_ms=round(settings.idle_transaction_seconds * 1000) if bounded else 0,
        slow_seconds=settings.slow_statement_seconds,
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
    groups: Mapping[str, Sequence[str]],
    decode: Decode[E],
    make_handler: Callable[
        [web.Application], Callable[[E, Delivery], Awaitable[Sequence[Outgoing]]]
    ],
    make_batch_handler: Callable[[web.Application], BatchHandler[E]] | None = None,
    max_records: int = 20,
) -> web.Application:
    """A service that applies the events of its consumer `groups` (group → topics), one
    consumer loop per group, all with the one handler (and batch handler, if any). On
    stop, each loop finishes the event in hand and commits before exiting."""
    app = service_app(settings)

    async def consumer(app: web.Application) -> AsyncIterator[None]:
        handler = make_handler(app)
        batch_handler = make_batch_handler(app) if make_batch_handler is not None else None
        loops = [
            _loop(app, settings, group, names, (handler, batch_handler), decode, max_records)
            for group, names in groups.items()
        ]
        for loop in loops:
            app[CONSUMERS].append(loop)
            task = asyncio.create_task(loop.run(), name=f"consumer-{loop.group}")
            app[CONSUMER_TASKS].append(task)
        yield
        for loop in loops:
            loop.stop()
        await asyncio.gather(*app[CONSUMER_TASKS])

    app.cleanup_ctx.append(consumer)
    return app


def _loop(
    app: web.Application,
    settings: Settings,
    group: str,
    topics: Sequence[str],
    handlers: tuple[Callable[[E, Delivery], Awaitable[Sequence[Outgoing]]], BatchHandler[E] | None],
    decode: Decode[E],
    max_records: int,
) -> ConsumerLoop[E]:
    return ConsumerLoop(
        service=settings.service_name,
        bootstrap=settings.kafka_bootstrap_servers,
        group=group,
        topics=topics,
        handler=handlers[0],
        batch_handler=handlers[1],
        decode=decode,
        publisher=app[PUBLISHER],
        max_records=max_records,
        partitions=settings.topic_partitions,
        retry_seconds=settings.transient_retry_seconds,
        on_dead_letter=lambda import_id, reason: _journal_dead_letter(app, import_id, reason),
    )


def tidegate_version() -> str:
    try:
        return version("tidegate")
    except PackageNotFoundError:  # pragma: no cover — not installed
        return "unknown"


def _consumers(app: web.Application) -> list[dict[str, Any]]:
    return [
        {
            "service": loop.service,
            "group": loop.group,
            "running": loop.running,
            "lag": loop.lag,
            "stalled_seconds": round(loop.stalled_for(), 1),
        }
        for loop in app[CONSUMERS]
    ]


DOWN_AFTER_BEATS = 3  # an instance silent for this many heartbeats is down (lost)
LOST_FOR_SECONDS = 600  # then it is shown as lost this long, and forgotten


async def heartbeat(app: web.Application) -> AsyncIterator[None]:
    """Every `heartbeat_seconds`, this instance reports itself (`tidegate.service_heartbeats`:
    service, version, host, pid, its consumers) for `sync status`, which shows it lost after
    three missed beats and forgets it LOST_FOR_SECONDS later. An instance that stops
    cleanly takes itself off the list."""
    settings = app[SETTINGS]
    host, pid = socket.gethostname(), os.getpid()
    instance = f"{settings.service_name}@{host}:{pid}"
    started = datetime.now(UTC)

    async def beat() -> None:
        while True:
            try:
                async with app[POOL].acquire(timeout=5) as conn:
                    await conn.execute(
                        "INSERT INTO tidegate.service_heartbeats (instance, service, version,"
                        " host, pid, started_at, last_seen, detail)"
                        " VALUES ($1, $2, $3, $4, $5, $6, now(), $7)"
                        " ON CONFLICT (instance) DO UPDATE SET last_seen = now(),"
                        " detail = EXCLUDED.detail",
                        instance,
                        settings.service_name,
                        tidegate_version(),
                        host,
                        pid,
                        started,
                        msgspec.json.encode({"consumers": _consumers(app)}).decode(),
                    )
                    await conn.execute(
                        "DELETE FROM tidegate.service_heartbeats"
                        " WHERE last_seen < now() - make_interval(secs => $1)",
                        LOST_FOR_SECONDS + settings.heartbeat_seconds * DOWN_AFTER_BEATS,
                    )
            except Exception as exc:  # never ends the heartbeat: the next one may pass
                if not is_transient(exc):
                    log.exception("heartbeat failed")
            await asyncio.sleep(settings.heartbeat_seconds)

    task = asyncio.create_task(beat(), name="heartbeat")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:  # a clean stop: off the list (a vanished instance stays, shown as lost, a while)
        async with app[POOL].acquire(timeout=5) as conn:
            await conn.execute(
                "DELETE FROM tidegate.service_heartbeats WHERE instance = $1", instance
            )
    except Exception as exc:  # noqa: BLE001 (stopping: the row then ages out as lost)
        log.warning("heartbeat not withdrawn", error=repr(exc))


async def _journal_dead_letter(app: web.Application, import_id: uuid.UUID, reason: str) -> None:
    async with app[POOL].acquire(timeout=5) as conn:
        await journal.note(
            conn, import_id, app[SETTINGS].service_name, "dead_lettered", reason=reason
        )


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the process can do its work; 503 once a consumer loop has died."""
    dead = [t.get_name() for t in request.app[CONSUMER_TASKS] if t.done()]
    return web.json_response(
        {"status": "unavailable" if dead else "ok", "dead": dead}, status=503 if dead else 200
    )


async def _database_answers(app: web.Application) -> tuple[str, bool, Any]:
    try:
        async with app[POOL].acquire(timeout=2) as conn:
            return "database", await conn.fetchval("SELECT true", timeout=2) is True, None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return "database", False, repr(exc)


async def _broker_answers(app: web.Application) -> tuple[str, bool, Any]:
    try:
        await asyncio.wait_for(app[PUBLISHER].broker_metadata(), 3)
    except (KafkaError, OSError, TimeoutError) as exc:
        return "broker", False, repr(exc)
    return "broker", True, None


async def readyz(request: web.Request) -> web.Response:
    """Readiness: every dependency answers and nothing that should move is stuck."""
    app = request.app
    stall = app[SETTINGS].stall_seconds
    checks: dict[str, Any] = {}
    healthy = True
    for name, ok, detail in await asyncio.gather(_database_answers(app), _broker_answers(app)):
        checks[name] = {"ok": ok, **({"detail": detail} if detail is not None else {})}
        healthy = healthy and ok
    for loop in app[CONSUMERS]:
        stalled = loop.stalled_for()
        ok = loop.running and stalled < stall
        checks[f"consumer:{loop.group}"] = {
            "ok": ok,
            "running": loop.running,
            "lag": loop.lag,
            "stalled_seconds": round(stalled, 1),
        }
        healthy = healthy and ok
    degraded = False
    if healthy:  # progress checks need the database
        for name, ok, detail in await asyncio.gather(*(check(app) for check in app[READINESS])):
            checks[name] = {"ok": ok, "detail": detail}
            degraded = degraded or not ok
    status = "unavailable" if not healthy else "degraded" if degraded else "ok"
    return web.json_response({"status": status, "checks": checks}, status=200 if healthy else 503)


Job = Callable[[web.Application], Awaitable[None]]


def every(seconds: float, job: Job, name: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that runs `job` now and every `seconds` until the app stops; a
    failure is logged and never ends the schedule (the next run may succeed)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async def run() -> None:
            while True:
                try:
                    await job(app)
                except Exception as exc:
                    if is_transient(exc):
                        log.warning(f"{name} failed; next run in a while", error=repr(exc))
                    else:
                        log.exception(f"{name} failed; next run in a while")
                await asyncio.sleep(seconds)

        task = asyncio.create_task(run(), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


# The services decode chunks into many small lists, each tracked by the cyclic garbage
# collector, whose default first threshold (700) starts a collection every 700 of them.
# Measured on the validator checking 1,000-row chunks: 10.5 us a row with the defaults,
# 7.9 with these; what exists at start (modules, settings) is frozen out of every
# collection. Reference counting still frees every row as soon as it is dropped.
GC_THRESHOLDS = (50_000, 20, 10)


def run_service(settings: Settings, create_app: Callable[[Settings], web.Application]) -> None:
    """Serve one service until SIGINT/SIGTERM; cleanup contexts drain the work in hand."""
    configure_logging(settings.log_level, settings.service_name)
    log.info("starting", host=settings.http_host, port=settings.http_port)
    app = create_app(settings)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        print=None,
        access_log=None,
        shutdown_timeout=settings.shutdown_seconds,
    )
