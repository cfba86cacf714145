"""`GET /api/v1/database/imports/stream`: Server-Sent Events for live progress. Each
change to an import the key may see is sent as an `import` event holding the import
resource (as `GET /imports/{id}` gives it), its `id` the change's time, so a client that
reconnects with `Last-Event-ID` (or `?since=`) misses nothing.

The gateway watches the imports table (one indexed query per half second per stream, while
the stream is open); the auditor and the loader are its writers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec
from aiohttp import web

from services.gateway import repository, sse
from services.gateway.access import principal_of
from services.gateway.params import invalid
from services.gateway.resources import API, import_of
from shared.service import POOL

routes = web.RouteTableDef()

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
# A change is stamped with its transaction's start: one that commits this much later than
# it began is still sent (each (import, version) once).
LATE_COMMIT = timedelta(seconds=10)


def _since(request: web.Request) -> datetime | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("since")
    if raw is None:
        return None
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid("since", "since (or Last-Event-ID) must be an ISO 8601 time.") from None
    if since.tzinfo is None:
        raise invalid("since", "since (or Last-Event-ID) must carry a time zone.")
    return since


def _only(request: web.Request) -> uuid.UUID | None:
    raw = request.query.get("import_id")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise invalid("import_id", "import_id must be a UUID.") from None


@routes.get(f"{API}/imports/stream", name="imports.stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """Changes from `since` (default: now) until the client goes away."""
    principal = principal_of(request)
    only, since = _only(request), _since(request)
    pool = request.app[POOL]
    if since is None:
        async with pool.acquire() as conn:
            since = await conn.fetchval("SELECT now()")
    response = await sse.open_stream(request)
    await response.write(b"retry: 2000\n\n")
    sent: dict[uuid.UUID, tuple[int, datetime]] = {}  # id → (version, updated_at) sent
    cursor = since
    quiet = 0.0
    while True:
        async with pool.acquire() as conn:
            rows = await repository.changed_imports(
                conn, principal, since=cursor - LATE_COMMIT, import_id=only
            )
        out = []
        for row in rows:
            if row["updated_at"] < since or sent.get(row["id"], (None,))[0] == row["version"]:
                continue
            sent[row["id"]] = (row["version"], row["updated_at"])
            stamp = row["updated_at"].isoformat()
            out.append(sse.frame("import", stamp, msgspec.json.encode(import_of(row))))
            cursor = max(cursor, row["updated_at"])
        for key in [k for k, (_, at) in sent.items() if at < cursor - 2 * LATE_COMMIT]:
            del sent[key]
        quiet = 0.0 if out else quiet + POLL_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            out.append(b": still here\n\n")
            quiet = 0.0
        if out:
            try:
                await response.write(b"".join(out))
            except ConnectionError:
                break
        if await sse.wait(request, POLL_SECONDS):
            break
    return await sse.close(response)
