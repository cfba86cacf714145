"""Downloads read at the database's speed and sent at the client's: the body is written to
a spool (memory up to `MEMORY`, then a temporary file) while a connection is held, and
sent once the connection is back in the pool, so a slow reader holds none. Sending ends
when the client reads nothing for `body_idle_seconds`."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping

from aiohttp import web

from shared.service import SETTINGS

MEMORY = 1 << 20
BLOCK = 256 * 1024


class Spool:
    """Use as `with Spool() as spool:` — fill it, then `send` it; it is closed on leaving."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=MEMORY)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self._file.close()

    def write(self, data: bytes) -> None:
        self._file.write(data)

    async def send(self, request: web.Request, headers: Mapping[str, str]) -> web.StreamResponse:
        """The spooled bytes as the response body."""
        idle = request.app[SETTINGS].body_idle_seconds
        response = web.StreamResponse(headers=headers)
        try:
            await response.prepare(request)
            self._file.seek(0)
            while block := self._file.read(BLOCK):
                await asyncio.wait_for(response.write(block), idle)
            await response.write_eof()
        except TimeoutError:
            if request.transport is not None:
                request.transport.close()  # the client stopped reading
        return response
