"""`GET /api/v1/database/imports/stream`: Server-Sent Events for live progress. Each
change to an import the key may see is sent as an `import` event holding the import
resource (as `GET /imports/{id}` gives it). Its `id` is a cursor: a client that reconnects
with `Last-Event-ID` misses nothing (it may see a change again). `?since=` (an ISO time)
starts from the changes stamped at or after that time.

The gateway's one watcher (`streams.Streams`) reads the changes for every open stream; this
handler sends a stream its backlog, then what the watcher hands it, until the client goes,
the gateway stops, or the key is no longer valid."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from services.gateway import sse
from services.gateway.access.guard import TOKEN, principal_of
from services.gateway.access.streams import BATCH_ROWS, STREAMS, Change, Stream
from services.gateway.imports.resources import API, import_of
from services.gateway.intake import import_store
from services.gateway.lifecycle import STOPPING
from services.gateway.params import TIME_SCHEMA, UUID_SCHEMA, Param, invalid
from shared.service import POOL

routes = web.RouteTableDef()
ONE_IMPORT = Param(name="import_id", schema=UUID_SCHEMA, description="only this import")
SINCE = Param(
    name="since", schema=TIME_SCHEMA, description="changes from (default: now); or Last-Event-ID"
)

HEARTBEAT_SECONDS = 15.0
CHECK_SECONDS = 1.0  # how often a quiet stream looks whether its client is still there


def _resume(request: web.Request) -> tuple[int | None, datetime | None]:
    """(cursor, since) to start from: Last-Event-ID (a cursor, or an ISO time as sent by
    earlier versions) or `?since=`; (None, None): from now."""
    raw = request.headers.get("Last-Event-ID") or request.query.get(SINCE.name)
    if raw is None:
        return None, None
    if raw.isdigit():
        if int(raw) >= 2**63:
            raise invalid("since", "Last-Event-ID is not a cursor this gateway gave.")
        return int(raw), None
    try:
        since = datetime.fromisoformat(raw)
        if since.tzinfo is not None:
            since = since.astimezone(UTC)  # out of range once in UTC: not a time at all
    except (ValueError, OverflowError):
        raise invalid("since", "since (or Last-Event-ID) must be an ISO 8601 time.") from None
    if since.tzinfo is None:
        raise invalid("since", "since (or Last-Event-ID) must carry a time zone.")
    return None, since


def _only(request: web.Request) -> uuid.UUID | None:
    raw = request.query.get(ONE_IMPORT.name)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise invalid("import_id", "import_id must be a UUID.") from None


class _Sender:
    """Frames for one stream, each (import, version) once."""

    def __init__(self, only: uuid.UUID | None) -> None:
        self._only = only
        self._sent: dict[uuid.UUID, tuple[int, int]] = {}  # id → (version, changed by xid)

    def frames(self, changes: list[Change]) -> bytes:
        out = []
        for change in changes:
            row = change.row
            if self._only is not None and row["id"] != self._only:
                continue
            if self._sent.get(row["id"], (-1, 0))[0] >= row["version"]:
                continue
            self._sent[row["id"]] = (row["version"], int(row["change"]))
            out.append(sse.frame("import", str(change.cursor), msgspec.json.encode(import_of(row))))
        if changes:  # what is older than the cursor will not be read again
            floor = min(c.cursor for c in changes)
            for key in [k for k, (_, xid) in self._sent.items() if xid < floor]:
                del self._sent[key]
        return b"".join(out)


async def _next(request: web.Request, watch: Stream) -> list[Change] | None:
    """The next changes handed to this stream, [] after CHECK_SECONDS without any, None
    when the stream must end (the gateway stops, the key is no longer valid, the client
    fell behind or has gone)."""
    stopping = request.app[STOPPING]
    got = asyncio.ensure_future(watch.changes.get())
    waits = [got, asyncio.ensure_future(watch.ended.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waits, timeout=CHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    if got.done() and not got.cancelled():
        return got.result()
    gone = request.transport is None or request.transport.is_closing()
    return None if watch.ended.is_set() or stopping.is_set() or gone else []


@routes.get(f"{API}/imports/stream", name="imports.stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """Changes from the resume point (default: now) until the client goes away."""
    principal = principal_of(request)
    only = _only(request)
    after, since = _resume(request)
    streams = request.app[STREAMS]
    sender = _Sender(only)
    async with streams.open(principal, request[TOKEN], live=True) as watch:
        opened = await streams.start()
        response = await sse.open_stream(request)
        await response.write(b"retry: 2000\n\n")
        while after is not None or since is not None:  # the backlog, page by page
            async with request.app[POOL].acquire() as conn:
                cursor, rows = await import_store.changed_imports(
                    conn,
                    after_xid=after,
                    since=since,
                    viewer=watch.principal,
                    import_id=only,
                    limit=BATCH_ROWS,
                )
            if len(rows) == BATCH_ROWS:  # a resume must read the rest of the page again
                cursor = min(cursor, int(rows[-1]["change"]))
            await response.write(sender.frames([Change(row, cursor) for row in rows]))
            if len(rows) < BATCH_ROWS:
                break
            after, since = int(rows[-1]["change"]), None
        quiet = 0.0
        while (changes := await _next(request, watch)) is not None:
            out = sender.frames([c for c in changes if not opened.committed(c.row["change"])])
            quiet = 0.0 if out else quiet + (0 if changes else CHECK_SECONDS)
            if quiet >= HEARTBEAT_SECONDS:
                out, quiet = b": still here\n\n", 0.0
            if out:
                try:
                    await response.write(out)
                except ConnectionError:
                    break
        if watch.why:  # the key was revoked, or the client fell behind: say why
            with contextlib.suppress(ConnectionError):
                await response.write(sse.frame("end", "", msgspec.json.encode(watch.why)))
    return await sse.close(response)
