"""`GET /api/v1/status` (the seed's `sync:status`): is everything healthy and moving?

Each service instance from its heartbeat (up, version, last heartbeat, its consumers), the
lag of every consumer group per topic as the broker sees it (so a stopped loader's lag
still shows, and grows), the outbox backlog, dead-lettered events, the imports running
with progress, rate and ETA, and the latest failures.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec
import structlog
from aiohttp import web
from aiokafka.errors import KafkaError

from services.gateway.imports.resources import import_url, respond
from shared import topics
from shared.db import Conn
from shared.kafka.admin import group_lag
from shared.service import DOWN_AFTER_BEATS, LOST_FOR_SECONDS, POOL, SETTINGS

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()


class Consumer(msgspec.Struct, kw_only=True):
    """One consumer loop of an instance, as its last heartbeat reported it."""

    service: str
    group: str
    running: bool
    lag: int | None
    stalled_seconds: float


class Instance(msgspec.Struct, kw_only=True):
    """A running instance, or one that vanished without stopping (lost, shown for
    LOST_FOR_SECONDS); one that stopped cleanly is not listed."""

    instance: str
    service: str
    up: bool  # a heartbeat within the last DOWN_AFTER_BEATS intervals
    state: Literal["up", "lost"]
    version: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    silent_seconds: float
    consumers: list[Consumer]


class Running(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    table: str
    status: str
    rows: int | None
    done: int
    progress: float | None
    rows_per_second: float
    eta_seconds: float | None
    created_at: datetime
    link: str


class Failure(msgspec.Struct, kw_only=True):
    what: str  # "import" or "operation:<kind>"
    id: uuid.UUID
    target: str
    status: str
    error: str | None
    at: datetime | None


class Lag(msgspec.Struct, kw_only=True):
    ok: bool  # measured (the broker answered)
    groups: dict[str, dict[str, int]]  # group → topic → messages not yet consumed
    error: str | None = None


class Outbox(msgspec.Struct, kw_only=True):
    pending: int
    oldest_seconds: float


class DeadLetters(msgspec.Struct, kw_only=True):
    last_hour: int
    last_day: int


class SyncStatus(msgspec.Struct, kw_only=True):
    healthy: bool  # lag measured and every service has at least one instance up
    services_down: list[str]
    instances: list[Instance]
    consumer_lag: Lag
    outbox: Outbox
    dead_letters: DeadLetters
    imports_running: list[Running]
    recent_failures: list[Failure]


async def _instances(conn: Conn, heartbeat_seconds: float) -> list[Instance]:
    rows = await conn.fetch(
        "SELECT instance, service, version, host, pid, started_at, last_seen, detail,"
        " last_seen > now() - make_interval(secs => $1) AS up,"
        " extract(epoch FROM now() - last_seen) AS silent_seconds"
        " FROM tidegate.service_heartbeats"
        " WHERE last_seen > now() - make_interval(secs => $1 + $2)"
        " ORDER BY service, instance",
        heartbeat_seconds * DOWN_AFTER_BEATS,
        LOST_FOR_SECONDS,
    )
    return [
        Instance(
            instance=r["instance"],
            service=r["service"],
            up=r["up"],
            state="up" if r["up"] else "lost",
            version=r["version"],
            host=r["host"],
            pid=r["pid"],
            started_at=r["started_at"],
            last_heartbeat=r["last_seen"],
            silent_seconds=round(float(r["silent_seconds"]), 1),
            consumers=_consumers(r["detail"]),
        )
        for r in rows
    ]


class _Detail(msgspec.Struct):
    consumers: list[Consumer]


def _consumers(detail: str | None) -> list[Consumer]:
    """The consumers of a heartbeat (none from an instance of a version that did not say)."""
    if not detail:
        return []
    try:
        return msgspec.json.decode(detail, type=_Detail).consumers
    except msgspec.ValidationError:
        return []


async def _imports_running(conn: Conn) -> list[Running]:
    rows = await conn.fetch(
        "SELECT id, target_table, status, mode, file_rows, total_rows, valid_rows, loaded_rows,"
        " failed_rows, skipped_rows, chunks_total, chunks_loaded, created_at,"
        " extract(epoch FROM now() - created_at) AS seconds"
        " FROM tidegate.imports WHERE finished_at IS NULL ORDER BY created_at LIMIT 50"
    )
    running = []
    for r in rows:
        rows_total = r["file_rows"] or r["total_rows"]
        used = r["valid_rows"] if r["mode"] == "validate_only" else r["loaded_rows"]
        done = used + r["failed_rows"] + r["skipped_rows"]
        rate = done / float(r["seconds"]) if r["seconds"] else 0.0
        remaining = max(rows_total - done, 0) if rows_total else None
        running.append(
            Running(
                id=r["id"],
                table=r["target_table"],
                status=r["status"],
                rows=rows_total,
                done=done,
                progress=round(done / rows_total, 4) if rows_total else None,
                rows_per_second=round(rate, 1),
                eta_seconds=round(remaining / rate, 1) if remaining and rate else None,
                created_at=r["created_at"],
                link=import_url(r["id"]),
            )
        )
    return running


async def _failures(conn: Conn) -> list[Failure]:
    rows = await conn.fetch(
        "(SELECT 'import' AS what, id, target_table AS target, status, error, finished_at AS at"
        "  FROM tidegate.imports WHERE status IN ('failed', 'cancelled')"
        "  ORDER BY finished_at DESC NULLS LAST LIMIT 10)"
        " UNION ALL (SELECT 'operation:' || kind, id, coalesce(import_id::text, ''), status,"
        "  error, finished_at FROM tidegate.operations WHERE status IN ('failed', 'refused')"
        "  ORDER BY finished_at DESC NULLS LAST LIMIT 10)"
        " ORDER BY at DESC NULLS LAST LIMIT 10"
    )
    return [
        Failure(
            what=r["what"],
            id=r["id"],
            target=r["target"],
            status=r["status"],
            error=r["error"],
            at=r["at"],
        )
        for r in rows
    ]


@routes.get("/api/v1/status", name="status.read")
async def sync_status(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    async with request.app[POOL].acquire() as conn:
        instances = await _instances(conn, settings.heartbeat_seconds)
        outbox = await conn.fetchrow(
            "SELECT count(*) AS pending,"
            " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest_seconds"
            " FROM tidegate.outbox WHERE published_at IS NULL"
        )
        dead = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE at > now() - interval '1 hour') AS last_hour,"
            " count(*) AS last_day FROM tidegate.import_journal"
            " WHERE kind = 'dead_lettered' AND at > now() - interval '1 day'"
        )
        running = await _imports_running(conn)
        failures = await _failures(conn)
    groups = {
        group: list(names)
        for per_service in topics.CONSUMER_GROUPS.values()
        for group, names in per_service.items()
    }
    try:
        lag = Lag(ok=True, groups=await group_lag(settings.kafka_bootstrap_servers, groups))
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("consumer lag not measured", error=repr(exc))
        lag = Lag(ok=False, groups={}, error=repr(exc))
    assert outbox is not None and dead is not None
    live = {i.service for i in instances if i.up}
    down = sorted({"gateway", *topics.CONSUMER_GROUPS} - live)  # no instance is up
    return respond(
        SyncStatus(
            healthy=lag.ok and not down,
            services_down=down,
            instances=instances,
            consumer_lag=lag,
            outbox=Outbox(
                pending=outbox["pending"], oldest_seconds=round(float(outbox["oldest_seconds"]), 1)
            ),
            dead_letters=DeadLetters(last_hour=dead["last_hour"], last_day=dead["last_day"]),
            imports_running=running,
            recent_failures=failures,
        )
    )
