"""Prometheus metrics common to every service, and the `/metrics` handler."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

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


async def metrics_handler(_: web.Request) -> web.Response:
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
