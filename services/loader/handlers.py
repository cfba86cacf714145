"""chunk-validated → rows in the target table → chunk-loaded.

The chunk is claimed in the ledger, loaded and its outcome recorded in one transaction,
so a redelivered chunk changes nothing: it only re-announces the recorded outcome. Rows
the database refuses (constraints, triggers) are isolated by bisection inside savepoints
and reported as row errors; the rest of the chunk loads.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import asyncpg
import msgspec
import structlog

from services.loader import repository
from services.loader.metrics import CHUNK_LOAD_SECONDS, ROWS_LOADED
from shared import topics
from shared.catalog import TableCache, TableDef
from shared.db import Conn
from shared.events import ChunkLoaded, ChunkValidated, Event, RowError
from shared.kafka import Delivery, Outgoing

log = structlog.get_logger(__name__)

# Refusals that belong to particular rows; anything else fails the attempt as a whole.
ROW_REFUSALS = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.RaiseError,
)
CHUNK_REFUSALS = (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError)

SQLSTATE_CODES = {
    "23505": "duplicate_key",
    "23503": "foreign_key_violation",
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

_errors_decoder = msgspec.msgpack.Decoder(list[RowError])


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


class ChunkLoader:
    def __init__(self, pool: asyncpg.Pool, tables: TableCache) -> None:
        self._pool = pool
        self._tables = tables

    async def handle(self, event: Event, _: Delivery) -> list[Outgoing]:
        if not isinstance(event, ChunkValidated):
            return []
        with CHUNK_LOAD_SECONDS.time():
            async with self._pool.acquire() as conn:
                outcome = await self.load(conn, event)
        return [(topics.CHUNK_LOADED, outcome, f"{event.import_id}:{event.seq}")]

    async def load(self, conn: Conn, event: ChunkValidated) -> ChunkLoaded:
        async with conn.transaction():
            if not await repository.claim_chunk(conn, event.import_id, event.seq):
                entry = await repository.ledger_entry(conn, event.import_id, event.seq)
                assert entry is not None
                log.info("chunk already loaded; re-announcing", seq=event.seq)
                return self._outcome(
                    event,
                    entry["loaded_rows"],
                    entry["failed_rows"],
                    _errors_decoder.decode(entry["errors"]) if entry["errors"] else [],
                )
            loaded, chunk_error = 0, None
            errors: list[RowError] = []
            if event.rows and event.chunk_error is None:
                loaded, errors, chunk_error = await self._insert(conn, event)
            failed = len(event.rows) - loaded
            await repository.record_outcome(
                conn,
                event.import_id,
                event.seq,
                loaded,
                failed,
                msgspec.msgpack.encode(errors) if errors else None,
            )
        ROWS_LOADED.labels("loaded").inc(loaded)
        ROWS_LOADED.labels("refused").inc(failed)
        return self._outcome(event, loaded, failed, errors, chunk_error)

    async def _insert(
        self, conn: Conn, event: ChunkValidated
    ) -> tuple[int, list[RowError], str | None]:
        table = await self._tables.get(conn, event.table)
        if table is None:
            return 0, [], f"table {event.table} no longer exists"
        statement = repository.insert_statement(table, event.columns)
        parts = itertools.count()
        try:
            loaded, errors = await self._isolate(
                conn, statement, table, event, event.rows, event.lines, parts
            )
        except CHUNK_REFUSALS as exc:
            return 0, [], f"the table changed under the import: {exc}"
        return loaded, errors, None

    async def _isolate(
        self,
        conn: Conn,
        statement: str,
        table: TableDef,
        event: ChunkValidated,
        rows: list[list[str]],
        lines: Sequence[int],
        parts: Iterator[int],
    ) -> tuple[int, list[RowError]]:
        """Insert `rows`; if the database refuses, split and retry each half, down to the
        single rows it refuses."""
        try:
            async with conn.transaction():
                return await repository.insert_rows(
                    conn, statement, table, rows, event.import_id, event.seq, next(parts)
                ), []
        except ROW_REFUSALS as exc:
            if len(rows) == 1:
                return 0, [refusal_error(lines[0], exc)]
        mid = len(rows) // 2
        first = await self._isolate(conn, statement, table, event, rows[:mid], lines[:mid], parts)
        second = await self._isolate(conn, statement, table, event, rows[mid:], lines[mid:], parts)
        return first[0] + second[0], first[1] + second[1]

    @staticmethod
    def _outcome(
        event: ChunkValidated,
        loaded: int,
        failed: int,
        errors: list[RowError],
        chunk_error: str | None = None,
    ) -> ChunkLoaded:
        return ChunkLoaded(
            import_id=event.import_id,
            seq=event.seq,
            loaded_rows=loaded,
            failed_rows=failed,
            errors=errors,
            chunk_error=chunk_error,
        )
