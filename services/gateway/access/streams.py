"""Every open stream of this gateway, in one place:

- at most `max_streams_per_key` streams per API key (429 beyond);
- each stream's key is authenticated again every `REVALIDATE_SECONDS`, so the streams of a
  revoked key (or of a rotated secret past its grace) end within seconds, and a key whose
  role or tables changed sees by its new rights;
- one watcher of the imports table serves every live stream, whatever their number: it
  reads the imports changed since its cursor twice a second while any stream listens, and
  hands each change to the streams that may see it.

The cursor is a transaction id: the oldest transaction still running when the watcher last
looked (`import_store.changed_imports`). Every change committed afterwards was made by a
transaction at or after it, so none is missed however long its transaction ran; a change
seen twice is sent once per (import, version). A stream whose client reads too slowly to
keep up is ended; its client resumes from its Last-Event-ID (the cursor)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import structlog
from aiohttp import web

from services.gateway.intake import import_store
from services.gateway.metrics import STREAM_POLLS, STREAMS_OPEN
from services.gateway.problems import Problem
from shared import key_store
from shared.api_keys import Principal
from shared.failures import is_transient
from shared.service import POOL, SETTINGS

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.5
REVALIDATE_SECONDS = 3.0
QUEUE_BATCHES = 256  # polls' worth of changes a stream may have unsent before it is ended
BATCH_ROWS = 2000


class Snapshot:
    """Which transactions had committed when a stream opened (`pg_current_snapshot()`):
    what they changed is the stream's backlog, not news."""

    def __init__(self, text: str) -> None:
        xmin, xmax, running = text.split(":")
        self.xmin, self.xmax = int(xmin), int(xmax)
        self.running = {int(x) for x in running.split(",") if x}

    def committed(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.running)


class Change:
    """One import row as the watcher read it, with the cursor a client resumes from."""

    __slots__ = ("cursor", "row")

    def __init__(self, row: asyncpg.Record, cursor: int) -> None:
        self.row = row
        self.cursor = cursor


class Stream:
    """One open stream: whose it is, and (live streams) the changes waiting to be sent."""

    def __init__(self, principal: Principal, token: tuple[str, str], *, live: bool) -> None:
        self.principal = principal
        self.token = token
        self.live = live
        self.changes: asyncio.Queue[list[Change]] = asyncio.Queue(QUEUE_BATCHES)
        self.ended = asyncio.Event()  # the key is no longer valid, or the client fell behind
        self.why = ""

    def end(self, why: str) -> None:
        if not self.ended.is_set():
            self.why = why
            self.ended.set()

    def may_see(self, row: asyncpg.Record) -> bool:
        """The Python twin of `import_store.visible` for an import row."""
        who = self.principal
        if who.tables is not None and row["target_table"] not in who.tables:
            return False
        return (
            who.may("admin")
            or row["key_id"] == who.id
            or (who.team is not None and row["team"] == who.team)
        )


class Streams:
    def __init__(self, pool: asyncpg.Pool, max_per_key: int) -> None:
        self._pool = pool
        self._max_per_key = max_per_key
        self._open: set[Stream] = set()
        self._per_key: Counter[uuid.UUID] = Counter()
        self._cursor: int | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @contextlib.asynccontextmanager
    async def open(
        self, principal: Principal, token: tuple[str, str], *, live: bool
    ) -> AsyncIterator[Stream]:
        """Register a stream for as long as it is open; 429 beyond the key's limit."""
        if self._per_key[principal.id] >= self._max_per_key:
            raise Problem(
                429,
                "too-many-streams",
                "Too many open streams",
                f"This key has {self._max_per_key} streams open on this gateway; close one.",
                max_streams=self._max_per_key,
            )
        stream = Stream(principal, token, live=live)
        self._open.add(stream)
        self._per_key[principal.id] += 1
        STREAMS_OPEN.inc()
        self._wake.set()
        try:
            yield stream
        finally:
            self._open.discard(stream)
            self._per_key[principal.id] -= 1
            if not self._per_key[principal.id]:
                del self._per_key[principal.id]
            STREAMS_OPEN.dec()

    async def cursor(self) -> int:
        """The watcher's cursor (set on its first look)."""
        if self._cursor is None:
            async with self._pool.acquire() as conn:
                self._cursor, _ = await import_store.changed_imports(conn, limit=0)
        return self._cursor

    async def start(self) -> Snapshot:
        """For a stream opening: what commits from now on will be handed to it, and what had
        committed already (its backlog is read, not handed over)."""
        await self.cursor()
        async with self._pool.acquire() as conn:
            return Snapshot(await conn.fetchval("SELECT pg_current_snapshot()::text"))

    async def run(self) -> None:
        """Watch while streams are open; re-check their keys every REVALIDATE_SECONDS."""
        stopping = self._stopping
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not stopping.is_set():
            try:
                if any(s.live for s in self._open):
                    await self._look()
                if self._open and loop.time() - checked >= REVALIDATE_SECONDS:
                    checked = loop.time()
                    await self._revalidate()
            except Exception as exc:  # the watcher must outlive any failure
                if not is_transient(exc):
                    log.exception("stream watcher failed; will retry")
            if not self._open:
                self._cursor = None  # no one listens: the next stream starts from then
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 5)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POLL_SECONDS)

    async def _look(self) -> None:
        after = await self.cursor()
        async with self._pool.acquire() as conn:
            cursor, rows = await import_store.changed_imports(
                conn, after_xid=after, limit=BATCH_ROWS
            )
        STREAM_POLLS.inc()
        if len(rows) == BATCH_ROWS:  # more to read: go on from the last transaction read
            cursor = int(rows[-1]["change"])
        self._cursor = max(after, cursor)
        if not rows:
            return
        # A client resumes from the cursor this look started at: it may see these again.
        changes = [Change(row, after) for row in rows]
        for stream in [s for s in self._open if s.live]:
            mine = [c for c in changes if stream.may_see(c.row)]
            if not mine:
                continue
            try:
                stream.changes.put_nowait(mine)
            except asyncio.QueueFull:
                stream.end("the client read too slowly to keep up; resume from Last-Event-ID")

    async def _revalidate(self) -> None:
        tokens = {s.token for s in self._open}
        async with self._pool.acquire() as conn:
            now = {token: await key_store.authenticate(conn, *token) for token in tokens}
        for stream in list(self._open):
            principal = now[stream.token]
            if principal is None:
                stream.end("the API key is no longer valid")
            else:
                stream.principal = principal


STREAMS = web.AppKey("streams", Streams)


async def streams_context(app: web.Application) -> AsyncIterator[None]:
    streams = Streams(app[POOL], app[SETTINGS].max_streams_per_key)
    app[STREAMS] = streams
    task = asyncio.create_task(streams.run(), name="stream-watcher")
    yield
    streams.stop()
    await task
