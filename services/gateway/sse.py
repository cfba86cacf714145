"""Server-Sent Events, for every stream the gateway serves: the response, the frames, and
their end when the gateway begins to stop (so an open stream never holds the graceful stop
for its whole timeout; the client reconnects, to another gateway)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from services.gateway.lifecycle import STOPPING


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


def frame(kind: str, ident: str, data: bytes) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (kind.encode(), ident.encode(), data)


async def wait(request: web.Request, seconds: float, ended: asyncio.Event) -> bool:
    """Sleep `seconds`; True at once if the gateway is stopping or `ended` is set, and
    True if the client has gone."""
    closing = request.app[STOPPING]
    either = [asyncio.ensure_future(closing.wait()), asyncio.ensure_future(ended.wait())]
    try:
        await asyncio.wait(either, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in either:
            waiting.cancel()
    gone = request.transport is None or request.transport.is_closing()
    return closing.is_set() or ended.is_set() or gone


async def close(response: web.StreamResponse) -> web.StreamResponse:
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response
