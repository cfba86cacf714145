"""An import's timeline (the seed's `logs:import`), from what the services record: accepted
(the import), each chunk submitted, validated and loaded (the auditor's facts, with the rows
in, passed and failed), the journal (state changes, re-drives, refused attempts,
dead-lettered events), operations (rollbacks, the backup before it) and the final counts.

`GET /imports/{id}/events` answers JSON; with `Accept: text/event-stream` it is a live
Server-Sent Events stream that ends once the import and its operations have finished.
Every event has an id stable within the import; a client that reconnects with
`Last-Event-ID` gets the events from a few seconds before that one on (facts committed
late may carry an earlier time), and skips the ids it has seen.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
from aiohttp import web

from services.gateway import sse
from services.gateway.access.guard import TOKEN, principal_of
from services.gateway.access.streams import STREAMS, Stream
from services.gateway.imports.resources import API, respond
from services.gateway.imports.submit import visible_import
from services.gateway.params import Param, int_param
from shared.db import Conn
from shared.service import POOL

routes = web.RouteTableDef()
POLL_SECONDS = 0.5
RESUME_OVERLAP = timedelta(seconds=5)
EVENTS_LIMIT = Param(
    name="limit",
    schema={"type": "integer", "minimum": 1, "maximum": 100_000},
    description="at most",
)
LAST_EVENT_ID = Param(
    name="Last-Event-ID",
    schema={"type": "string"},
    description="resume a stream after this event",
    where="header",
)
STAGE_SERVICE = {"submitted": "gateway", "validated": "validator", "loaded": "loader"}

# A chunk's stages carry the time the service that did each one recorded it (the stored
# chunk, the validator's verdict, the loader's ledger entry), all PostgreSQL's clock, not the
# time the auditor counted them: it may count a chunk's loaded before its validated. Within
# a chunk the stages are ordered causally whatever the times say.
TIMELINE_SQL = """
SELECT id, at, service, kind, seq, detail FROM (
SELECT *, max(at) OVER (PARTITION BY coalesce(chunk, id) ORDER BY step
                        ROWS UNBOUNDED PRECEDING) AS causal_at
FROM (
SELECT 'accepted' AS id, i.created_at AS at, coalesce(i.producer, 'gateway') AS service,
       'accepted' AS kind, NULL::integer AS seq,
       jsonb_build_object('filename', i.filename, 'rows', i.file_rows, 'chunks', i.chunks_total,
                          'mode', i.mode, 'source', i.source) AS detail,
       NULL::text AS chunk, 0 AS step
  FROM tidegate.imports i WHERE i.id = $1
UNION ALL
SELECT p.stage || ':' || p.seq,
       CASE p.stage WHEN 'submitted' THEN coalesce(c.stored_at, p.recorded_at)
                    WHEN 'validated' THEN coalesce(v.validated_at, p.recorded_at)
                    ELSE coalesce(l.loaded_at, p.recorded_at) END,
       p.stage, 'chunk_' || p.stage, p.seq,
       jsonb_build_object('rows_in', p.rows_in, 'rows_ok', p.rows_ok, 'rows_failed', p.rows_failed),
       'chunk:' || p.seq,
       CASE p.stage WHEN 'submitted' THEN 1 WHEN 'validated' THEN 2 ELSE 3 END
  FROM tidegate.chunk_progress p
  LEFT JOIN tidegate.chunks c
    ON p.stage = 'submitted' AND c.import_id = p.import_id AND c.seq = p.seq
  LEFT JOIN tidegate.chunk_verdicts v
    ON p.stage = 'validated' AND v.import_id = p.import_id AND v.seq = p.seq
  LEFT JOIN tidegate.chunk_ledger l
    ON p.stage = 'loaded' AND l.import_id = p.import_id AND l.seq = p.seq
 WHERE p.import_id = $1
UNION ALL
SELECT 'journal:' || j.id, j.at, j.service, j.kind, j.seq, j.detail, NULL, 0
  FROM tidegate.import_journal j WHERE j.import_id = $1
UNION ALL
SELECT 'operation:' || o.id || ':requested', o.created_at, 'gateway', o.kind || '_requested', NULL,
       jsonb_build_object('operation', o.id, 'trigger', o.trigger, 'dry_run', o.dry_run),
       NULL, 0
  FROM tidegate.operations o
 WHERE o.import_id = $1 OR o.backup_id = (SELECT backup_id FROM tidegate.imports WHERE id = $1)
UNION ALL
SELECT 'operation:' || o.id || ':' || o.status, o.finished_at, 'loader', o.kind || '_' || o.status,
       NULL, jsonb_build_object('operation', o.id, 'error', o.error, 'result', o.result), NULL, 0
  FROM tidegate.operations o
 WHERE (o.import_id = $1 OR o.backup_id = (SELECT backup_id FROM tidegate.imports WHERE id = $1))
   AND o.finished_at IS NOT NULL
UNION ALL
SELECT 'finished', i.finished_at, 'auditor', 'finished', NULL,
       jsonb_build_object('status', i.status, 'error', i.error, 'total', i.total_rows,
                          'loaded', i.loaded_rows, 'updated', i.updated_rows,
                          'skipped', i.skipped_rows, 'failed', i.failed_rows,
                          'duplicates', i.duplicate_rows,
                          'seconds', extract(epoch FROM i.finished_at - i.created_at)),
       NULL, 0
  FROM tidegate.imports i WHERE i.id = $1 AND i.finished_at IS NOT NULL
) AS events
) AS ordered
ORDER BY kind = 'finished', causal_at, step, id  -- the final report last
"""

# Still to come: the import has not finished, or one of its operations is pending.
PENDING_SQL = """
SELECT EXISTS (SELECT 1 FROM tidegate.imports WHERE id = $1 AND finished_at IS NULL)
    OR EXISTS (SELECT 1 FROM tidegate.operations WHERE import_id = $1 AND status = 'pending')
"""


class TimelineEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One moment of an import's life; `elapsed`: seconds since it was accepted."""

    id: str
    at: str
    elapsed: float
    service: str
    kind: str
    seq: int | None
    detail: dict[str, Any] | None


class Timeline(msgspec.Struct, kw_only=True):
    items: list[TimelineEvent]  # oldest first


async def timeline(conn: Conn, import_id: uuid.UUID) -> list[TimelineEvent]:
    rows = await conn.fetch(TIMELINE_SQL, import_id)
    start = rows[0]["at"] if rows else None
    return [
        TimelineEvent(
            id=r["id"],
            at=r["at"].isoformat(),
            elapsed=round((r["at"] - start).total_seconds(), 3) if start else 0.0,
            service=STAGE_SERVICE.get(r["service"], r["service"]),
            kind=r["kind"],
            seq=r["seq"],
            detail=msgspec.json.decode(r["detail"]) if r["detail"] else None,
        )
        for r in rows
    ]


@routes.get(f"{API}/imports/{{import_id}}/events", name="imports.events")
async def import_events(request: web.Request) -> web.StreamResponse:
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        import_id = (await visible_import(conn, request))["id"]
        events = await timeline(conn, import_id)
    if "text/event-stream" not in request.headers.get("Accept", ""):
        limit = int_param(request, EVENTS_LIMIT.name, 10_000, *EVENTS_LIMIT.bounds)
        return respond(Timeline(items=events[:limit]))
    streams = request.app[STREAMS]
    async with streams.open(principal_of(request), request[TOKEN], live=False) as watch:
        return await _stream(request, import_id, events, watch)


async def _stream(
    request: web.Request, import_id: uuid.UUID, events: list[TimelineEvent], watch: Stream
) -> web.StreamResponse:
    """The import's journal until it has finished (or the gateway stops, or the key is no
    longer valid). It polls the journal of its one import: the streams registry counts and
    re-checks it, but the shared watcher reads only the imports table."""
    response = await sse.open_stream(request)
    sent: set[str] = set()
    last = request.headers.get(LAST_EVENT_ID.name)
    since = next((e.at for e in events if e.id == last), None)
    if since is not None:  # resume: a few seconds before the last event seen, on
        floor = datetime.fromisoformat(since) - RESUME_OVERLAP
        sent = {e.id for e in events if datetime.fromisoformat(e.at) < floor or e.id == last}
    pool = request.app[POOL]
    while True:
        for event in events:
            if event.id not in sent:
                sent.add(event.id)
                await response.write(sse.frame(event.kind, event.id, msgspec.json.encode(event)))
        async with pool.acquire() as conn:
            pending = await conn.fetchval(PENDING_SQL, import_id)
            if not pending:
                events = await timeline(conn, import_id)  # what committed meanwhile
                if all(e.id in sent for e in events):
                    break
                continue
        if await sse.wait(request, POLL_SECONDS, watch.ended):
            return await sse.close(response)  # the gateway stops: the client reconnects
        async with pool.acquire() as conn:
            events = await timeline(conn, import_id)
    await response.write(b"event: end\ndata: {}\n\n")
    return await sse.close(response)
