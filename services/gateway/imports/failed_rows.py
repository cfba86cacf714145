"""An import's failed rows as they were in the file, and how many of them later retries
loaded.

A failed row is a line with an error (not only warnings), or every row of a chunk that
failed as a whole. Its cells come from the chunk store, in the file's
column order under the file's own header names, followed by DIAGNOSTIC_COLUMNS (its line
and its errors), which an upload of the edited file recognises and leaves out.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from services.gateway.intake.upload import DIAGNOSTIC_COLUMNS
from shared import chunk_store
from shared.db import Conn
from shared.spreadsheet import escape_cell

Row = Mapping[str, Any] | asyncpg.Record
KEPT = ("completed", "completed_with_errors")  # a retry in these states kept its loaded rows


async def failed_lines(conn: Conn, import_id: uuid.UUID) -> dict[int, list[str]]:
    """Line → its errors ("column: code: message"), for every line with an error."""
    found: dict[int, list[str]] = defaultdict(list)
    rows = await conn.fetch(
        "SELECT line, column_name, code, message FROM tidegate.row_errors"
        " WHERE import_id = $1 AND severity = 'error' ORDER BY line, column_name NULLS FIRST",
        import_id,
    )
    for r in rows:
        where = f"{r['column_name']}: " if r["column_name"] else ""
        found[r["line"]].append(f"{where}{r['code']}: {r['message']}")
    return found


async def _whole_chunk_failures(conn: Conn, import_id: uuid.UUID) -> set[int]:
    """Chunks whose rows failed without a row error of their own (the chunk failed)."""
    rows = await conn.fetch(
        "SELECT DISTINCT p.seq FROM tidegate.chunk_progress p WHERE p.import_id = $1"
        " AND p.stage <> 'submitted' AND p.rows_failed > 0 AND NOT EXISTS"
        " (SELECT 1 FROM tidegate.row_errors e WHERE e.import_id = p.import_id"
        "  AND e.seq = p.seq AND e.stage = p.stage AND e.severity = 'error')",
        import_id,
    )
    return {r["seq"] for r in rows}


async def failed_rows(conn: Conn, imp: Row) -> AsyncIterator[tuple[list[str], int, str]]:
    """(cells as in the file, line, errors) of every failed row, in file order. Use inside
    a transaction (the chunks are read with a cursor)."""
    errors = await failed_lines(conn, imp["id"])
    whole = await _whole_chunk_failures(conn, imp["id"])
    chunk_error = imp["error"] or "the chunk failed as a whole"
    async for stored in conn.cursor(
        "SELECT payload FROM tidegate.chunks WHERE import_id = $1 ORDER BY seq", imp["id"]
    ):
        chunk = chunk_store.decode(stored["payload"])
        for cells, line in zip(chunk.rows, chunk.line_numbers(), strict=True):
            if line in errors:
                yield cells, line, "; ".join(errors[line])
            elif chunk.seq in whole:
                yield cells, line, chunk_error


def header_of(imp: Row) -> list[str]:
    return list(imp["header"] or imp["columns"]) + list(DIAGNOSTIC_COLUMNS)


def csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([escape_cell(c) for c in cells])
    return out.getvalue().encode()


async def failed_csv(conn: Conn, imp: Row) -> tuple[bytes, int]:
    """The whole failed-rows file (an import holds at most max_records_per_import rows)
    and how many rows it has."""
    parts = [csv_line(header_of(imp))]
    async with conn.transaction(readonly=True):
        async for cells, line, why in failed_rows(conn, imp):
            parts.append(csv_line([*cells, str(line), why]))
    return b"".join(parts), len(parts) - 1


class Retry(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    parent_id: uuid.UUID
    depth: int  # 1: a retry of this import; 2: a retry of that retry, …
    status: str
    loaded: int
    failed: int
    created_at: datetime


class Reconciliation(msgspec.Struct, kw_only=True):
    """ "Verify fixes": the import's failed rows that its retries loaded since."""

    failed_rows: int
    loaded_by_retries: int
    outstanding: int
    retries: list[Retry]


async def reconciliation(conn: Conn, imp: Row) -> Reconciliation:
    """How many of the import's failed rows its retries (and theirs) loaded since, which
    are still outstanding, and the chain of retries."""
    failed = set((await failed_lines(conn, imp["id"])).keys())
    chain = await conn.fetch(
        "WITH RECURSIVE chain AS (SELECT id, parent_id, 1 AS depth FROM tidegate.imports"
        " WHERE parent_id = $1 UNION ALL SELECT i.id, i.parent_id, c.depth + 1"
        " FROM tidegate.imports i JOIN chain c ON i.parent_id = c.id)"
        " SELECT c.id, c.parent_id, c.depth, i.status, i.loaded_rows, i.failed_rows,"
        " i.created_at FROM chain c JOIN tidegate.imports i USING (id)"
        " ORDER BY c.depth, i.created_at",
        imp["id"],
    )
    if not failed and not chain:
        return Reconciliation(failed_rows=0, loaded_by_retries=0, outstanding=0, retries=[])
    # Walk from the deepest retries up: a line is resolved if its retry kept the row it
    # stood for, or a retry of that retry resolved it.
    resolved: dict[uuid.UUID, set[int]] = defaultdict(set)
    for retry in sorted(chain, key=lambda r: -r["depth"]):
        mapping = await _parent_lines(conn, retry["id"])
        if retry["status"] in KEPT:
            kept = set(mapping) - set((await failed_lines(conn, retry["id"])).keys())
        else:
            kept = set()
        kept |= resolved.get(retry["id"], set())
        resolved[retry["parent_id"]] |= {mapping[line] for line in kept if line in mapping}
    loaded = len(failed & resolved.get(imp["id"], set()))
    return Reconciliation(
        failed_rows=len(failed),
        loaded_by_retries=loaded,
        outstanding=len(failed) - loaded,
        retries=[
            Retry(
                id=r["id"],
                parent_id=r["parent_id"],
                depth=r["depth"],
                status=r["status"],
                loaded=r["loaded_rows"],
                failed=r["failed_rows"],
                created_at=r["created_at"],
            )
            for r in chain
        ],
    )


async def _parent_lines(conn: Conn, import_id: uuid.UUID) -> dict[int, int]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT line, parent_line FROM tidegate.retried_lines WHERE import_id = $1", import_id
    )
    return {r["line"]: r["parent_line"] for r in rows}
