"""chunk-submitted → chunk-validated. Validation is a pure function of the chunk and the
table definition, so a redelivered chunk yields the same event id and content."""

from __future__ import annotations

import asyncpg
import structlog

from services.validator.chunk import validate_rows
from services.validator.metrics import CELL_ERRORS, ROWS_VALIDATED
from services.validator.rules import ColumnRule
from shared import topics
from shared.catalog import HeaderMismatch, TableCache, TableDef, match_header
from shared.events import ChunkSubmitted, ChunkValidated, Event, RowError
from shared.kafka import Delivery, Outgoing

log = structlog.get_logger(__name__)


class ChunkValidator:
    def __init__(self, pool: asyncpg.Pool, tables: TableCache, max_rows: int) -> None:
        self._pool = pool
        self._tables = tables
        self._max_rows = max_rows
        self._rules: dict[tuple[TableDef, tuple[str, ...]], list[ColumnRule]] = {}

    async def handle(self, event: Event, _: Delivery) -> list[Outgoing]:
        if not isinstance(event, ChunkSubmitted):
            return []
        async with self._pool.acquire() as conn:
            table = await self._tables.get(conn, event.table)
        result = self.validate(event, table)
        return [(topics.CHUNK_VALIDATED, result, f"{event.import_id}:{event.seq}")]

    def validate(self, event: ChunkSubmitted, table: TableDef | None) -> ChunkValidated:
        problem = self._chunk_problem(event, table)
        if problem is not None:
            log.warning("chunk rejected as a whole", seq=event.seq, reason=problem)
            ROWS_VALIDATED.labels("invalid").inc(len(event.rows))
            return self._result(event, [], [], [], len(event.rows), chunk_error=problem)
        assert table is not None
        result = validate_rows(
            self._rules_for(table, event.columns), event.rows, event.line_numbers()
        )
        ROWS_VALIDATED.labels("valid").inc(len(result.rows))
        ROWS_VALIDATED.labels("invalid").inc(result.invalid_rows)
        for error in result.errors:
            CELL_ERRORS.labels(error.code).inc()
        return self._result(event, result.rows, result.lines, result.errors, result.invalid_rows)

    def _chunk_problem(self, event: ChunkSubmitted, table: TableDef | None) -> str | None:
        """Checks an upstream producer may get wrong; the gateway never does."""
        if table is None:
            return f"unknown table {event.table!r}"
        if len(event.rows) > self._max_rows:
            return f"chunk has {len(event.rows)} rows; at most {self._max_rows} allowed"
        if event.lines is not None and len(event.lines) != len(event.rows):
            return "lines and rows differ in length"
        try:
            if match_header(event.columns, table) != event.columns:
                return "columns must be the table's own column names"
        except HeaderMismatch as exc:
            return str(exc)
        return None

    def _rules_for(self, table: TableDef, columns: tuple[str, ...]) -> list[ColumnRule]:
        key = (table, columns)  # a changed definition is a new key
        rules = self._rules.get(key)
        if rules is None:
            rules = [ColumnRule(table.column(name)) for name in columns]
            self._rules[key] = rules
        return rules

    @staticmethod
    def _result(
        event: ChunkSubmitted,
        rows: list[list[str]],
        lines: list[int],
        errors: list[RowError],
        invalid: int,
        chunk_error: str | None = None,
    ) -> ChunkValidated:
        return ChunkValidated(
            import_id=event.import_id,
            seq=event.seq,
            table=event.table,
            columns=event.columns,
            rows=rows,
            lines=lines,
            total_rows=len(event.rows),
            invalid_rows=invalid,
            errors=errors,
            chunk_error=chunk_error,
        )
