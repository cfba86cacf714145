"""The reconciler: PostgreSQL is the source of truth, so an import that stops moving is
re-driven from what PostgreSQL holds, whatever the broker lost or a consumer gave up on.

Every `reconcile_seconds`, one auditor (a session advisory lock elects it) looks for
unfinished imports without progress for `stall_seconds`. An import whose chunk events are
still waiting, unconsumed, for a consumer group on its key's partition (the broker says so)
is queued, not lost: it is left alone, so consumers that are merely behind are never given
the same work twice. Any other is re-driven, exactly the missing steps:

- a chunk the loader's ledger holds but whose loaded fact was never counted: the fact is
  counted from the ledger (the event that announced it was lost);
- a chunk not yet counted as submitted or validated, or (unless validate-only) not in the
  ledger: a reference to it in the chunk store (chunk.stored) is published again. The
  validator gives the same verdict, the loader loads it once or re-announces its outcome.

Each re-drive is idempotent by the events' deterministic ids, logged with the import id,
counted in `tidegate_redrives_total` and shown in the import's `redrives`. An import
without progress for `give_up_seconds` (say, an upstream import whose chunks the broker
lost and which tidegate never stored) is failed with the steps still missing, which frees
its concurrency slot.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from aiokafka.errors import KafkaError

from services.auditor import repository
from services.auditor.handlers import ImportAuditor
from services.auditor.metrics import (
    IMPORTS_FINISHED,
    IMPORTS_STUCK,
    IMPORTS_UNFINISHED,
    OLDEST_CHUNK_SECONDS,
    RECONCILER_PASSES,
    REDRIVES,
)
from shared import imports, journal, operations, topics
from shared.config import Settings
from shared.db import Conn
from shared.events import ImportStatus
from shared.failures import is_transient
from shared.kafka.admin import partition_of, partition_offsets
from shared.kafka.calls import BROKER_CALL_SECONDS
from shared.kafka.producer import EventPublisher
from shared.service import POOL, PUBLISHER, READINESS, SETTINGS

log = structlog.get_logger(__name__)

# Any fixed number: one auditor reconciles at a time.
RECONCILER_LOCK = 0x7467_7263
PASS_LOCK_TIMEOUT_MS = 2000  # a row another transaction holds is looked at next pass


class Missing:
    """The steps an import's chunks still lack, from its records in PostgreSQL."""

    def __init__(self, row: Mapping[str, Any], validate_only: bool) -> None:
        stored, ledger = set(row["stored"]), set(row["ledger"])
        submitted, validated = set(row["submitted"]), set(row["validated"])
        total = row["chunks_total"]
        expected = set(range(total)) if total is not None else stored | submitted | ledger
        self.uncounted_loads = sorted(ledger - set(row["loaded"]))
        unfinished = {
            seq
            for seq in expected
            if seq not in submitted
            or seq not in validated
            or (not validate_only and seq not in ledger)
        }
        self.resend = sorted(unfinished & stored)
        self.lost = sorted(unfinished - stored)  # not in the chunk store: cannot be re-driven

    def describe(self) -> str:
        parts = []
        if self.resend:
            parts.append(f"chunks {self.resend} not through validation and loading")
        if self.lost:
            parts.append(
                f"chunks {self.lost} not through validation and loading,"
                " and tidegate holds no copy of them to re-drive"
            )
        return "; ".join(parts) or "no chunk missing a step, yet no final state"


class Reconciler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: EventPublisher,
        auditor: ImportAuditor,
        settings: Settings,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._auditor = auditor
        self._settings = settings
        self._stopping = asyncio.Event()
        # Each chunk group's committed offset per partition, and since when it is that.
        self._consumed: dict[tuple[str, str, int], tuple[int, float]] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.reconcile()
            except Exception as exc:
                if is_transient(exc):
                    log.warning("reconciliation failed; will try again", error=repr(exc))
                else:  # a bug: logged, and the next pass tries again
                    log.exception("reconciliation failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), self._settings.reconcile_seconds)
            except TimeoutError:
                pass

    async def reconcile(self) -> int:
        """One pass; returns how many imports it re-drove or failed (0 if another auditor
        holds the lock). It never waits long on a lock: an import or an operation that
        another transaction holds is in hand, and is looked at again next pass."""
        acted = 0
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RECONCILER_LOCK):
                return 0
            try:
                await conn.execute(f"SET lock_timeout = {PASS_LOCK_TIMEOUT_MS}")
                gauges = await repository.progress_gauges(conn, self._settings.stall_seconds)
                IMPORTS_UNFINISHED.set(gauges["unfinished"])
                IMPORTS_STUCK.set(gauges["stuck"])
                OLDEST_CHUNK_SECONDS.set(float(gauges["oldest_chunk_seconds"]))
                stalled = await repository.stalled_imports(conn, self._settings.stall_seconds)
                queued = await self._queued(conn, [row["id"] for row in stalled])
                for row in stalled:
                    with structlog.contextvars.bound_contextvars(import_id=str(row["id"])):
                        if row["id"] in queued:
                            REDRIVES.labels("waited_for_consumers").inc()
                            log.info(
                                "import queued behind its consumers; not re-driven",
                                behind=queued[row["id"]],
                            )
                            continue
                        try:
                            await self._redrive(conn, row)
                        except asyncpg.LockNotAvailableError:
                            log.info("import held by another transaction; next pass")
                            continue
                        acted += 1
                await self._resend_operations(conn)
                RECONCILER_PASSES.inc()
            finally:
                await conn.execute("RESET lock_timeout")
                await conn.execute("SELECT pg_advisory_unlock($1)", RECONCILER_LOCK)
        return acted

    async def _queued(
        self, conn: Conn, import_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, int]]:
        """The imports whose chunk events still wait, unconsumed, on their key's partition
        for a group that is working through them: its committed offset there moved within
        the stall time, or the group had no member alive and joined then (heartbeats;
        nothing could take a re-drive before one is back); with those groups' lag.
        Records that an alive group does not move past are taken as lost: a consumer
        whose broker lost its log may be past them. If the broker cannot say, no import is
        queued (re-driving repeats work at worst; waiting on a broker that lost the events
        would wait for ever)."""
        if not import_ids:
            return {}
        try:
            offsets = await partition_offsets(
                self._settings.kafka_bootstrap_servers, topics.CHUNK_GROUPS
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("consumer lag unknown; stalled imports taken as lost", error=repr(exc))
            return {}
        consuming = await repository.groups_consuming(conn, self._settings.heartbeat_seconds)
        now = time.monotonic()
        waiting: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) → lag
        for group, per_topic in offsets.items():
            down = group not in consuming
            for topic, parts in per_topic.items():
                for partition, (done, end) in enumerate(parts):
                    where = (group, topic, partition)
                    last = self._consumed.get(where)
                    if last is None or last[0] != done or down:
                        # Moved, or no instance could move it: a group back from being
                        # down has the stall time to move before its records count as lost.
                        self._consumed[where] = (done, now)
                    moving = now - self._consumed[where][1] < self._settings.stall_seconds
                    if end > done and moving:
                        waiting[where] = end - done
        queued = {}
        for import_id in import_ids:
            behind = {
                f"{group} {topic}": waiting[(group, topic, p)]
                for group, per_topic in offsets.items()
                for topic, parts in per_topic.items()
                if parts
                and (group, topic, p := partition_of(str(import_id), len(parts))) in waiting
            }
            if behind:
                queued[import_id] = behind
        return queued

    async def _redrive(self, conn: Conn, row: asyncpg.Record) -> None:
        import_id: uuid.UUID = row["id"]
        missing = Missing(
            dict(await repository.chunk_records(conn, import_id)), row["mode"] == "validate_only"
        )
        if float(row["idle_seconds"]) > self._settings.give_up_seconds:
            await self._give_up(conn, import_id, row, missing)
            return
        statuses: list[ImportStatus] = []
        outcomes = await repository.ledger_outcomes(conn, import_id, missing.uncounted_loads)
        if outcomes:
            statuses.append(await self._auditor.apply(conn, outcomes))
        REDRIVES.labels("counted_from_ledger").inc(len(missing.uncounted_loads))
        stored = await repository.stored_chunks(conn, import_id, missing.resend)
        acks = await self._publisher.send(
            [(topics.CHUNK_SUBMITTED, ref, str(import_id)) for ref in stored]
            + [(topics.IMPORT_STATUS, s, str(import_id)) for s in statuses]
        )
        await asyncio.wait_for(asyncio.gather(*acks), BROKER_CALL_SECONDS)
        REDRIVES.labels("chunk_resent").inc(len(stored))
        await repository.mark_redriven(conn, import_id)
        await journal.note(
            conn,
            import_id,
            "auditor",
            "redriven",
            counted_from_ledger=missing.uncounted_loads,
            resent=missing.resend,
            lost=missing.lost,
        )
        log.warning(
            "import re-driven",
            idle_seconds=round(float(row["idle_seconds"]), 1),
            redrives=row["redrives"] + 1,
            counted_from_ledger=missing.uncounted_loads,
            resent=missing.resend,
            lost=missing.lost,
        )

    async def _resend_operations(self, conn: Conn) -> None:
        """Operations still pending after the stall time, and not in the loader's hands:
        their command is sent again from the outbox (the loader does each once, whatever
        it receives)."""
        async with conn.transaction():
            stale = await operations.stale(conn, self._settings.stall_seconds)
            if not stale:
                return
            acks = await self._publisher.send_stored([dict(r) for r in stale])
            await asyncio.wait_for(asyncio.gather(*acks), BROKER_CALL_SECONDS)
            for row in stale:
                await operations.touch(conn, row["id"])
        REDRIVES.labels("operation_resent").inc(len(stale))
        log.warning("operations re-sent", operations=[str(r["id"]) for r in stale])

    async def _give_up(
        self, conn: Conn, import_id: uuid.UUID, row: asyncpg.Record, missing: Missing
    ) -> None:
        reason = (
            f"no progress for {self._settings.give_up_seconds:.0f} s after"
            f" {row['redrives']} re-drives: {missing.describe()}"
        )
        async with conn.transaction():
            version = await imports.fail_import(conn, import_id, reason, by="auditor")
        if version is not None:
            IMPORTS_FINISHED.labels("failed").inc()
            REDRIVES.labels("import_failed").inc()
            log.error("import failed by the reconciler", reason=reason)


async def stuck_imports(app: web.Application) -> tuple[str, bool, object]:
    """Readiness: no import that was re-driven and still makes no progress."""
    async with app[POOL].acquire(timeout=2) as conn:
        gauges = await repository.progress_gauges(conn, app[SETTINGS].stall_seconds)
    return (
        "imports",
        gauges["stuck"] == 0,
        {"unfinished": gauges["unfinished"], "stuck": gauges["stuck"]},
    )


async def reconciler_context(app: web.Application) -> AsyncIterator[None]:
    pool = app[POOL]
    reconciler = Reconciler(pool, app[PUBLISHER], ImportAuditor(pool), app[SETTINGS])
    app[READINESS].append(stuck_imports)
    task = asyncio.create_task(reconciler.run(), name="reconciler")
    yield
    reconciler.stop()
    await task
