"""Every chunk event → the import's state and counts → an import-status event.

Each (chunk, stage) fact is recorded once (the inbox) in the same transaction as the
counts it changes; a redelivered event re-announces the current status and changes nothing.
The events of a fetched batch are applied an import at a time: one transaction and one
import-status event per import, whatever the number of its facts in the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog

from services.auditor import repository
from services.auditor.metrics import IMPORT_SECONDS, IMPORTS_FINISHED
from services.auditor.state import (
    Counts,
    Fact,
    Loaded,
    Submitted,
    Validated,
    apply_fact,
    next_status,
)
from services.auditor.view import AuditedEvent, SubmittedView, ValidatedView
from shared import imports, journal, operations, topics
from shared.db import Conn
from shared.errors import InvalidEvent
from shared.events import ChunkLoaded, ChunkStored, ImportStatus, RowError
from shared.import_status import FAILED, TERMINAL
from shared.kafka.records import Delivery, Outgoing

log = structlog.get_logger(__name__)

ChunkEvent = SubmittedView | ChunkStored | ValidatedView | ChunkLoaded


class Observation(msgspec.Struct, frozen=True):
    """What one chunk event tells the auditor."""

    stage: str
    fact: Fact
    rows_in: int
    rows_ok: int
    rows_failed: int
    errors: list[RowError]
    chunk_error: str | None


def observe(event: ChunkEvent) -> Observation:
    match event:
        case SubmittedView():
            n = len(event.rows)
            return Observation("submitted", Submitted(event.seq, n, event.last), n, n, 0, [], None)
        case ChunkStored():
            n = event.row_count
            return Observation("submitted", Submitted(event.seq, n, event.last), n, n, 0, [], None)
        case ValidatedView():
            valid = event.total_rows - event.invalid_rows - event.skipped_rows
            return Observation(
                "validated",
                Validated(
                    valid,
                    event.invalid_rows,
                    event.skipped_rows,
                    event.duplicate_rows,
                    chunk_failed=event.chunk_error is not None,
                ),
                event.total_rows,
                valid,
                event.invalid_rows,
                event.errors,
                event.chunk_error,
            )
        case ChunkLoaded():
            return Observation(
                "loaded",
                Loaded(
                    event.loaded_rows,
                    event.failed_rows,
                    event.updated_rows,
                    event.skipped_rows,
                    event.duplicate_rows,
                    chunk_failed=event.chunk_error is not None,
                ),
                event.loaded_rows + event.failed_rows,
                event.loaded_rows,
                event.failed_rows,
                event.errors,
                event.chunk_error,
            )


def _counts(row: asyncpg.Record) -> Counts:
    return Counts(**{name: row[name] for name in Counts.__struct_fields__})


def _status(import_id: uuid.UUID, status: str, version: int, counts: Counts) -> ImportStatus:
    return ImportStatus(
        import_id=import_id,
        status=status,
        version=version,
        mode=counts.mode,
        total_rows=counts.total_rows,
        valid_rows=counts.valid_rows,
        loaded_rows=counts.loaded_rows,
        failed_rows=counts.failed_rows,
        skipped_rows=counts.skipped_rows,
        updated_rows=counts.updated_rows,
        duplicate_rows=counts.duplicate_rows,
        chunks_total=counts.chunks_total,
        chunks_loaded=counts.chunks_loaded,
    )


async def _check(conn: Conn, event: ChunkEvent, source: str) -> None:
    """Raise InvalidEvent unless the event says what tidegate recorded: a reference, or a
    gateway import's inline chunk, the chunk store's row count and `last` flag, a
    chunk.validated the validator's verdict, a chunk.loaded the loader's ledger. (A forged
    verdict with invalid_rows = total would fail an import and start its rollback.)"""
    match event:
        case ChunkStored() | SubmittedView() if isinstance(event, ChunkStored) or source == "http":
            count = event.row_count if isinstance(event, ChunkStored) else len(event.rows)
            stored = await repository.stored_shape(conn, event.import_id, event.seq)
            same = stored is not None and (
                stored["row_count"] is None  # stored before the store kept its counts
                or (stored["row_count"], stored["last"]) == (count, event.last)
            )
        case ValidatedView():
            verdict = await repository.recorded_verdict(conn, event.import_id, event.seq)
            same = verdict is not None and (
                verdict["total_rows"] is None  # recorded before verdicts kept their counts
                or (
                    verdict["total_rows"],
                    verdict["invalid_rows"],
                    verdict["skipped_rows"],
                    verdict["duplicate_rows"],
                    verdict["error_count"],
                    verdict["chunk_error"],
                )
                == (
                    event.total_rows,
                    event.invalid_rows,
                    event.skipped_rows,
                    event.duplicate_rows,
                    len(event.errors),
                    event.chunk_error,
                )
            )
        case ChunkLoaded():
            recorded = await repository.ledger_outcomes(conn, event.import_id, [event.seq])
            same = recorded == [event]
        case _:
            same = True
    if not same:
        stage = type(event).__name__
        raise InvalidEvent(
            f"{stage} of chunk {event.seq} of import {event.import_id} is not what tidegate"
            " recorded for it"
        )


class ImportAuditor:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def handle(self, event: AuditedEvent, delivery: Delivery) -> list[Outgoing]:
        return [o async for part in self.handle_batch([(event, delivery)]) for o in part]

    async def handle_batch(
        self, items: Sequence[tuple[AuditedEvent, Delivery]]
    ) -> AsyncGenerator[list[Outgoing], None]:
        """The events of a batch, an import at a time: each import's facts in one
        transaction, and one status event for it (its state after them all), yielded once
        committed."""
        by_import: dict[uuid.UUID, list[ChunkEvent]] = {}
        producer: dict[uuid.UUID, str | None] = {}
        for event, delivery in items:
            if isinstance(event, ImportStatus):
                continue
            by_import.setdefault(event.import_id, []).append(event)
            producer.setdefault(event.import_id, delivery.source)
        if not by_import:
            return
        async with self._pool.acquire() as conn:
            for import_id, facts in by_import.items():
                with structlog.contextvars.bound_contextvars(import_id=str(import_id)):
                    status = await self.apply(conn, facts, producer=producer[import_id])
                yield [(topics.IMPORT_STATUS, status, str(import_id))]

    async def apply(
        self, conn: Conn, events: Sequence[ChunkEvent], *, producer: str | None = None
    ) -> ImportStatus:
        """Count each event's fact once (events of one import, in the order received), in
        one transaction; raises InvalidEvent for a chunk.validated or chunk.loaded event of
        an import tidegate does not know (nothing is created)."""
        first = events[0]
        import_id = first.import_id
        async with conn.transaction():
            row = await repository.lock_import(conn, import_id)
            if row is None:
                if not isinstance(first, SubmittedView):
                    stage = observe(first).stage
                    raise InvalidEvent(f"{stage} event for unknown import {import_id}")
                await imports.register_import(
                    conn,
                    import_id=import_id,
                    table=first.table,
                    columns=first.columns,
                    chunk_size=len(first.rows),
                    mode=first.mode,
                    producer=producer,
                )
                row = await repository.lock_import(conn, import_id)
                assert row is not None
            counts, status, error, counted = _counts(row), row["status"], None, False
            for event in events:
                seen = observe(event)
                await _check(conn, event, row["source"])
                if not await repository.record_fact(
                    conn,
                    import_id,
                    event.seq,
                    seen.stage,
                    seen.rows_in,
                    seen.rows_ok,
                    seen.rows_failed,
                ):
                    log.info(
                        "fact already recorded; re-announcing status",
                        stage=seen.stage,
                        seq=event.seq,
                    )
                    continue
                counted = True
                await repository.record_errors(conn, import_id, event.seq, seen.stage, seen.errors)
                counts = apply_fact(counts, seen.fact)
                previous, status = status, next_status(status, counts)
                fact_error = seen.chunk_error
                if counts.atomic and status == FAILED and fact_error is None:
                    fact_error = "atomic import: a row was rejected, so nothing is kept"
                error = error or fact_error  # the first one stays (as the import keeps it)
                if status != previous:
                    await journal.note(
                        conn,
                        import_id,
                        "auditor",
                        "status",
                        previous=previous,
                        status=status,
                        error=fact_error,
                        loaded=counts.loaded_rows,
                        failed=counts.failed_rows,
                    )
            if not counted:
                return _status(import_id, row["status"], row["version"], counts)
            finished = status in TERMINAL
            version = await repository.update_import(
                conn, import_id, status, counts, error=error, finished=finished
            )
            if finished:
                await imports.forget_key_claims(conn, import_id)
            if status == FAILED and row["status"] not in TERMINAL:
                await operations.rollback_after_failure(conn, import_id, "failure")
        if finished and row["status"] not in TERMINAL:
            IMPORTS_FINISHED.labels(status).inc()
            IMPORT_SECONDS.observe((datetime.now(UTC) - row["created_at"]).total_seconds())
            log.info(
                "import finished",
                status=status,
                loaded=counts.loaded_rows,
                failed=counts.failed_rows,
            )
        return _status(import_id, status, version, counts)
