"""Prometheus metrics common to every service, and the `/metrics` handler."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

EVENTS_CONSUMED = Counter(
    "tidegate_events_consumed_total",
    "Events taken from a topic, by outcome (applied, retried, dead_lettered).",
    ["service", "topic", "outcome"],
)
EVENT_SECONDS = Histogram(
    "tidegate_event_handle_seconds",
    "Time to apply one event, effects committed.",
    ["service", "topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_IGNORED = Counter(
    "tidegate_events_ignored_total",
    "Well-formed events deliberately not applied, by reason (import_finished: a replay or a"
    " late re-drive).",
    ["service", "reason"],
)
CONSUMER_LAG = Gauge(
    "tidegate_consumer_lag",
    "Records on the broker that this member's partitions hold and it has not applied yet.",
    ["service", "group"],
)
PARTITION_LAG = Gauge(
    "tidegate_consumer_partition_lag",
    "Records on one partition this member owns that it has not applied yet (the last value"
    " measured while it owned the partition).",
    ["service", "group", "topic", "partition"],
)
EVENT_BYTES_PUBLISHED = Counter(
    "tidegate_event_bytes_published_total",
    "Bytes of event values sent to the broker (before compression), by topic.",
    ["service", "topic"],
)
CONSUMER_RECONNECTS = Counter(
    "tidegate_consumer_reconnects_total",
    "Times a consumer lost the broker and was rebuilt (topics re-created if missing).",
    ["service"],
)


async def metrics_handler(_: web.Request) -> web.Response:
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
