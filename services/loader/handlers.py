"""chunk-validated → rows in the target table → chunk-loaded.

The chunk is claimed in the ledger, loaded and its outcome recorded in one transaction,
so a redelivered chunk changes nothing: it only re-announces the recorded outcome. The rows
are read from the chunk store, as the validator's verdict lets them through. New rows go in
with COPY in that transaction; if the database refuses any (constraints, triggers), the
transaction is rolled back and the chunk loaded again with statements, the refused rows
isolated by bisection inside savepoints and reported as row errors; the rest loads.

The duplicate policy picks the statement: plain insert (reject), insert skipping rows
that conflict on a unique key (skip), or insert-or-update on the match key (update). A
dry run loads inside a savepoint that is rolled back; only its outcome is kept.
Validate-only chunks are not loaded at all.

A chunk the database refuses for a passing reason (deadlock, lock or statement timeout) is
tried again up to the import's `auto_retry` attempts, then recorded as failed with the
cause (shared/attempts.py). Before the first chunk of an import that asked for a backup is
loaded, the backup is taken.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence

import asyncpg
import structlog

from services.loader import repository
from services.loader.metrics import CHUNK_LOAD_SECONDS, CHUNKS_BY_PATH, ROWS_LOADED
from shared import chunk_store, imports, journal, ledger, topics
from shared.attempts import AttemptsExhausted, backoff, with_attempts
from shared.catalog import TableCache, TableDef
from shared.db import Conn
from shared.error_codes import ErrorCode
from shared.errors import InvalidEvent, TidegateError
from shared.events import (
    ChunkLoaded,
    ChunkSubmitted,
    ChunkValidated,
    Event,
    RowError,
    digest,
    shape_problem,
)
from shared.failures import is_refused_attempt
from shared.kafka.records import Delivery, Outgoing
from shared.kafka.runs import apply_in_runs
from shared.metrics import EVENTS_IGNORED

log = structlog.get_logger(__name__)

# Refusals that belong to particular rows; anything else fails the attempt as a whole.
ROW_REFUSALS = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.RaiseError,
    asyncpg.exceptions.CardinalityViolationError,  # one upsert touching a row twice
)
CHUNK_REFUSALS = (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError)

SQLSTATE_CODES: dict[str, ErrorCode] = {
    "23505": "duplicate_in_table",
    "23503": "missing_reference",
    "23502": "required",
    "23514": "check_violation",
    "23P01": "exclusion_violation",
    "22001": "too_long",
    "22003": "out_of_range",
    "22008": "out_of_range",
    "22P02": "invalid_format",
    "22007": "invalid_format",
    "P0001": "rejected_by_trigger",
}


def refusal_error(line: int, exc: asyncpg.PostgresError) -> RowError:
    detail = f"{exc.args[0] if exc.args else exc}"
    if getattr(exc, "detail", None):
        detail += f" ({exc.detail})"
    return RowError(
        line=line,
        column=getattr(exc, "column_name", None),
        code=SQLSTATE_CODES.get(exc.sqlstate or "", "rejected_by_database"),
        message=detail,
    )


class CopyRefused(TidegateError):
    """The database refused a chunk's COPY: its transaction is lost, load it again (a
    signal between two methods of the loader, never raised out of it)."""


class NotTogether(TidegateError):
    """A run of chunks that must be loaded one by one (a signal inside the loader, never
    raised out of it)."""


def _copyable(event: Event) -> tuple[uuid.UUID, int, int] | None:
    """What a verdict that only adds rows (loaded with COPY) contributes to a run loaded
    together; None for anything else."""
    if (
        isinstance(event, ChunkValidated)
        and event.mode == "import"
        and event.on_duplicate == "reject"
        and event.valid_rows > 0
        and event.chunk_error is None
        and shape_problem(event) is None
    ):
        return event.import_id, event.seq, event.total_rows
    return None


class NotAdmitted(InvalidEvent):
    """A chunk.validated event the loader must not apply; `reason` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ChunkLoader:
    def __init__(
        self,
        pool: asyncpg.Pool,
        tables: TableCache,
        backoff_seconds: float,
        before_first_chunk: Callable[[Conn, uuid.UUID, uuid.UUID], Awaitable[str | None]],
        max_rows: int,
    ) -> None:
        self._pool = pool
        self._max_rows = max_rows  # the most rows loaded together
        self._tables = tables
        self._backoff = backoff_seconds
        self._before_first_chunk = before_first_chunk

    async def handle(self, event: Event, _: Delivery) -> list[Outgoing]:
        return await self._handle(event)

    async def _handle(self, event: Event, refused: BaseException | None = None) -> list[Outgoing]:
        """`handle`; `refused`: the group transaction this chunk was part of was refused
        for a passing reason (that was its first attempt)."""
        if not isinstance(event, ChunkValidated) or event.mode == "validate_only":
            return []
        if (problem := shape_problem(event)) is not None:
            raise InvalidEvent(f"malformed chunk.validated: {problem}")
        try:
            with CHUNK_LOAD_SECONDS.time():
                async with self._pool.acquire() as conn:
                    # One read per chunk: its import's attempts, and the backup it asked for.
                    found = await repository.import_settings(conn, event.import_id)
                    attempts = 1 if found is None else found["auto_retry"]
                    blocked = None
                    if found is not None and found["backup_operation"] is not None:
                        blocked = await self._before_first_chunk(
                            conn, event.import_id, found["backup_operation"]
                        )
                    if blocked is not None:
                        outcome = await self.load(conn, event, give_up=blocked)
                    else:
                        outcome = await self._attempt(conn, event, attempts, refused)
        except NotAdmitted as exc:
            if exc.reason != "import_finished":
                raise
            EVENTS_IGNORED.labels("loader", exc.reason).inc()
            log.info("chunk of a finished import not loaded", seq=event.seq)
            return []
        return [(topics.CHUNK_LOADED, outcome, str(event.import_id))]

    def handle_batch(
        self,
        items: Sequence[tuple[Event, Delivery]],
        one: Callable[[Event, Delivery], Awaitable[list[Outgoing]]],
    ) -> AsyncGenerator[list[Outgoing], None]:
        """Runs of verdicts on consecutive chunks of one import that only add rows are
        loaded in one transaction (group commit: one lock, one claim statement, one COPY,
        one commit; a ledger entry and a lineage row per chunk), each run's outcomes
        yielded once committed; anything else, or a run the database refuses, is handled
        one by one, by `one` (a run refused for a passing reason counts as an attempt at
        each of its chunks: `auto_retry` bounds what the database sees of each)."""
        return apply_in_runs(items, _copyable, self._max_rows, self._load_run, one)

    async def _load_run(self, run: list[Event]) -> list[Outgoing] | None:
        verdicts = [e for e in run if isinstance(e, ChunkValidated)]
        try:
            outcomes = await self._together(verdicts)
        except Exception as exc:
            if not is_refused_attempt(exc):
                raise
            # A deadlock, a lock or statement timeout refuses the transaction, not one
            # chunk: each chunk of it had an attempt, and goes on alone with the rest.
            log.warning("chunks loaded together were refused", error=repr(exc))
            await asyncio.sleep(backoff(1, self._backoff))
            return [o for verdict in verdicts for o in await self._handle(verdict, refused=exc)]
        if outcomes is None:
            return None
        return [(topics.CHUNK_LOADED, o, str(o.import_id)) for o in outcomes]

    async def _together(self, events: Sequence[ChunkValidated]) -> list[ChunkLoaded] | None:
        """The outcomes of loading `events` in one transaction, committed; None (nothing
        done) when they must go one by one: a backup to take first, a chunk already loaded
        or not admitted, a refused COPY."""
        first = events[0]
        if any((e.columns, e.table) != (first.columns, first.table) for e in events):
            return None
        with CHUNK_LOAD_SECONDS.time():
            async with self._pool.acquire() as conn:
                found = await repository.import_settings(conn, first.import_id)
                table = await self._tables.get(conn, first.table)
                if found is None or found["backup_operation"] is not None or table is None:
                    return None
                try:
                    async with conn.transaction():
                        outcomes = await self._load_together(conn, table, events)
                except (NotTogether, *ROW_REFUSALS, *CHUNK_REFUSALS) as exc:
                    seqs = [e.seq for e in events]
                    log.info("chunks loaded one by one", seqs=seqs, cause=repr(exc))
                    return None
        ROWS_LOADED.labels("loaded").inc(sum(o.loaded_rows for o in outcomes))
        return outcomes

    async def _load_together(
        self, conn: Conn, table: TableDef, events: Sequence[ChunkValidated]
    ) -> list[ChunkLoaded]:
        await imports.hold_for_load(conn, events[0].import_id)
        chunks = await self._claim_all(conn, events)
        passed = [
            chunk_store.passed_rows(chunk, event)[0]
            for chunk, event in zip(chunks, events, strict=True)
        ]
        await repository.copy_rows(conn, table, events[0].columns, [r for p in passed for r in p])
        loaded = [self._copied(table, e, rows) for e, rows in zip(events, passed, strict=True)]
        await repository.record_outcomes(conn, loaded)
        return [outcome for outcome, _ in loaded]

    async def _claim_all(
        self, conn: Conn, events: Sequence[ChunkValidated]
    ) -> list[ChunkSubmitted]:
        """Claim every chunk of the run and return the stored chunks; raises NotTogether
        unless each is claimed here, admitted and stored."""
        found = await repository.claim_many(conn, events[0].import_id, [e.seq for e in events])
        if found is None:
            raise NotTogether("unknown import")
        chunks = []
        for event, admission in zip(events, found, strict=True):
            if not admission.claimed:
                raise NotTogether(f"chunk {event.seq} already loaded")
            try:
                chunk = self._admit(event, admission)
            except NotAdmitted as exc:
                raise NotTogether(exc.reason) from exc
            if chunk is None:
                raise NotTogether(f"chunk {event.seq} not in the chunk store")
            chunks.append(chunk)
        return chunks

    async def _attempt(
        self,
        conn: Conn,
        event: ChunkValidated,
        attempts: int,
        refused_together: BaseException | None = None,
    ) -> ChunkLoaded:
        """Load, trying again while the database refuses for a passing reason (a refused
        group transaction that held the chunk was its first attempt)."""
        refused = journal.refusals(conn, event.import_id, "loader", event.seq, attempts)
        first = 1
        if refused_together is not None:
            await refused(1, refused_together)
            first = 2
        try:
            return await with_attempts(
                lambda: self.load(conn, event),
                attempts,
                self._backoff,
                "loader",
                refused,
                first=first,
                cause=refused_together,
            )
        except AttemptsExhausted as exc:
            return await self.load(conn, event, give_up=str(exc))

    async def load(
        self, conn: Conn, event: ChunkValidated, give_up: str | None = None
    ) -> ChunkLoaded:
        """Load the chunk once (or, with `give_up`, record it failed for that reason);
        raises NotAdmitted for a chunk the validator did not produce (or of an import
        that has finished)."""
        try:
            outcome = await self._load(conn, event, give_up, copy=True)
        except CopyRefused:
            outcome = await self._load(conn, event, give_up, copy=False)
        ROWS_LOADED.labels("loaded").inc(outcome.loaded_rows)
        ROWS_LOADED.labels("refused").inc(outcome.failed_rows)
        ROWS_LOADED.labels("skipped").inc(outcome.skipped_rows)
        return outcome

    async def _load(
        self, conn: Conn, event: ChunkValidated, give_up: str | None, *, copy: bool
    ) -> ChunkLoaded:
        async with conn.transaction():
            await imports.hold_for_load(conn, event.import_id)
            loads = bool(event.valid_rows) and event.chunk_error is None and give_up is None
            found = await repository.claim(conn, event.import_id, event.seq, rows=loads)
            if found is None:
                raise NotAdmitted("unknown_import", f"import {event.import_id} is not known")
            if not found.claimed:
                entry = await repository.ledger_entry(conn, event.import_id, event.seq)
                assert entry is not None
                log.info("chunk already loaded; re-announcing", seq=event.seq)
                return ledger.outcome_of(event.import_id, dict(entry))
            chunk = self._admit(event, found)
            lineage = None
            if give_up is not None:
                log.error("chunk failed: every attempt was refused", seq=event.seq, cause=give_up)
                outcome = self._failed(event, give_up)
            elif not event.valid_rows or event.chunk_error is not None:
                outcome = ChunkLoaded(
                    import_id=event.import_id, seq=event.seq, loaded_rows=0, failed_rows=0
                )
            elif chunk is None:
                outcome = self._failed(event, "the chunk is no longer in the chunk store")
            elif event.mode == "dry_run":
                trial = conn.transaction()
                await trial.start()
                try:
                    outcome, _ = await self._insert(conn, event, chunk, copy=False)
                finally:
                    await trial.rollback()
            else:
                outcome, lineage = await self._insert(conn, event, chunk, copy=copy)
            await repository.record_outcome(conn, outcome, lineage)
        return outcome

    async def _insert(
        self, conn: Conn, event: ChunkValidated, chunk: ChunkSubmitted, *, copy: bool
    ) -> tuple[ChunkLoaded, repository.Lineage | None]:
        """The chunk's outcome, and the lineage row still to record with it (COPY's)."""
        rows, lines = chunk_store.passed_rows(chunk, event)
        table = await self._tables.get(conn, event.table)
        if table is None:
            return self._failed(event, f"table {event.table} no longer exists"), None
        if copy and event.on_duplicate == "reject":
            try:
                await repository.copy_rows(conn, table, event.columns, rows)
            except (*ROW_REFUSALS, *CHUNK_REFUSALS) as exc:
                raise CopyRefused from exc
            return self._copied(table, event, rows)
        refused = not copy and event.on_duplicate == "reject" and event.mode != "dry_run"
        CHUNKS_BY_PATH.labels("isolated" if refused else "statement").inc()
        if event.on_duplicate == "update":
            statement = repository.upsert_statement(table, event.columns, event.match_on)
        else:
            statement = repository.insert_statement(
                table, event.columns, skip_conflicts=event.on_duplicate == "skip"
            )
        parts = itertools.count()
        try:
            loaded, updated, errors = await self._isolate(
                conn, statement, table, event, rows, lines, parts
            )
        except CHUNK_REFUSALS as exc:
            return self._failed(event, f"the table changed under the import: {exc}"), None
        failed = len(errors)
        skipped = len(rows) - loaded - failed
        outcome = ChunkLoaded(
            import_id=event.import_id,
            seq=event.seq,
            loaded_rows=loaded,
            failed_rows=failed,
            updated_rows=updated,
            skipped_rows=skipped,
            # Duplicates the validator found are counted there; these are new since.
            duplicate_rows=skipped + sum(e.code == "duplicate_in_table" for e in errors),
            errors=errors,
        )
        return outcome, None

    async def _isolate(
        self,
        conn: Conn,
        statement: str,
        table: TableDef,
        event: ChunkValidated,
        rows: list[list[str]],
        lines: Sequence[int],
        parts: Iterator[int],
    ) -> tuple[int, int, list[RowError]]:
        """Insert `rows` → (loaded, updated, errors); if the database refuses, split and
        retry each half, down to the single rows it refuses."""
        try:
            async with conn.transaction():
                loaded, updated = await repository.insert_rows(
                    conn, statement, table, rows, event.import_id, event.seq, next(parts)
                )
                return loaded, updated, []
        except ROW_REFUSALS as exc:
            if len(rows) == 1:
                return 0, 0, [refusal_error(lines[0], exc)]
        mid = len(rows) // 2
        first = await self._isolate(conn, statement, table, event, rows[:mid], lines[:mid], parts)
        second = await self._isolate(conn, statement, table, event, rows[mid:], lines[mid:], parts)
        return first[0] + second[0], first[1] + second[1], first[2] + second[2]

    @staticmethod
    def _copied(
        table: TableDef, event: ChunkValidated, rows: Sequence[Sequence[str]]
    ) -> tuple[ChunkLoaded, repository.Lineage]:
        """The outcome of a chunk whose rows were copied, with its lineage row."""
        CHUNKS_BY_PATH.labels("copy").inc()
        outcome = ChunkLoaded(
            import_id=event.import_id, seq=event.seq, loaded_rows=len(rows), failed_rows=0
        )
        lineage = repository.copy_lineage(table, event.columns, rows, event.import_id, event.seq)
        return outcome, lineage

    @staticmethod
    def _admit(event: ChunkValidated, found: repository.Admission) -> ChunkSubmitted | None:
        """Only the validator's own verdict about a chunk of a running import is loaded;
        returns the stored chunk (None if it is gone) or raises NotAdmitted."""
        if found.verdict != digest(event):
            raise NotAdmitted(
                "not_validated",
                f"chunk {event.seq} of import {event.import_id} is not the validator's verdict",
            )
        if found.finished:
            raise NotAdmitted("import_finished", f"import {event.import_id} has finished")
        if found.payload is None:
            return None  # gone, or not read: the verdict loads nothing
        chunk = chunk_store.decode(found.payload)
        if (len(chunk.rows), chunk.columns) != (event.total_rows, event.columns):
            raise NotAdmitted(
                "not_validated",
                f"chunk {event.seq} of import {event.import_id} is not the stored chunk",
            )
        return chunk

    @staticmethod
    def _failed(event: ChunkValidated, reason: str) -> ChunkLoaded:
        """The whole chunk could not be loaded."""
        return ChunkLoaded(
            import_id=event.import_id,
            seq=event.seq,
            loaded_rows=0,
            failed_rows=event.valid_rows,
            chunk_error=reason,
        )
