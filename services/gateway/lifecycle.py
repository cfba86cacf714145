"""The gateway's stop, as every long request sees it: `STOPPING` is set when the gateway
begins to stop (aiohttp's on_shutdown), so open streams end and uploads still being
received are answered 503 at once, instead of holding the graceful stop for its whole
timeout (the client retries, on another gateway)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from services.gateway.problems import Problem, retry_later

STOPPING = web.AppKey("stopping", asyncio.Event)
T = TypeVar("T")


def install(app: web.Application) -> None:
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stop)


async def _stop(app: web.Application) -> None:
    app[STOPPING].set()


def shutting_down() -> Problem:
    return retry_later(
        503,
        "shutting-down",
        "The gateway is stopping",
        "The gateway began to stop before the request was received whole; send it again.",
        1,
    )


async def from_client(request: web.Request, waiting: Awaitable[T], idle: float) -> T:
    """What `waiting` (a read from the client) gives, within `idle` seconds (else 408),
    unless the gateway begins to stop first (503)."""
    reading = asyncio.ensure_future(waiting)
    stopping = asyncio.ensure_future(request.app[STOPPING].wait())
    try:
        await asyncio.wait((reading, stopping), timeout=idle, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not reading.done():
            reading.cancel()
    if reading.done() and not reading.cancelled():
        return reading.result()
    if request.app[STOPPING].is_set():
        raise shutting_down()
    raise Problem(
        408,
        "request-timeout",
        "Request timeout",
        f"Nothing of the request body arrived for {idle:g} seconds.",
        idle_timeout_seconds=idle,
    )
