"""SQL of the auditor: imports' state and counts, the per-chunk inbox, row errors."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from services.auditor.state import Counts
from shared.db import Conn
from shared.events import RowError


async def lock_import(conn: Conn, import_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, status, version, mode, total_rows, valid_rows, loaded_rows, failed_rows,"
        " skipped_rows, updated_rows, duplicate_rows, chunks_total, chunks_submitted,"
        " chunks_validated, chunks_loaded, created_at"
        " FROM tidegate.imports WHERE id = $1 FOR UPDATE",
        import_id,
    )


async def create_import(
    conn: Conn,
    import_id: uuid.UUID,
    table: str,
    columns: Sequence[str],
    chunk_size: int,
    mode: str,
) -> None:
    """An import first seen on the topics (produced upstream, not through the gateway).
    A later event may name the table that an earlier one could not (`table` is then '')."""
    await conn.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source, mode)"
        " VALUES ($1, $2, $3, $4, 'kafka', $5) ON CONFLICT (id) DO UPDATE"
        " SET target_table = EXCLUDED.target_table, columns = EXCLUDED.columns"
        " WHERE imports.target_table = '' AND EXCLUDED.target_table <> ''",
        import_id,
        table,
        list(columns),
        max(chunk_size, 1),
        mode,
    )


async def record_fact(
    conn: Conn,
    import_id: uuid.UUID,
    seq: int,
    stage: str,
    rows_in: int,
    rows_ok: int,
    rows_failed: int,
) -> bool:
    """False if the fact was already recorded: the event is a redelivery."""
    new = await conn.fetchval(
        "INSERT INTO tidegate.chunk_progress (import_id, seq, stage, rows_in, rows_ok, rows_failed)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
        import_id,
        seq,
        stage,
        rows_in,
        rows_ok,
        rows_failed,
    )
    return new is True


async def record_errors(
    conn: Conn, import_id: uuid.UUID, seq: int, stage: str, errors: list[RowError]
) -> None:
    if errors:
        await conn.copy_records_to_table(
            "row_errors",
            schema_name="tidegate",
            columns=[
                "import_id",
                "seq",
                "stage",
                "line",
                "column_name",
                "code",
                "message",
                "value",
                "severity",
            ],
            records=[
                (
                    import_id,
                    seq,
                    stage,
                    e.line,
                    e.column,
                    e.code,
                    e.message,
                    None if e.value is None else e.value.replace("\x00", "\\0"),
                    e.severity,
                )
                for e in errors
            ],
        )


async def update_import(
    conn: Conn,
    import_id: uuid.UUID,
    status: str,
    counts: Counts,
    *,
    error: str | None,
    finished: bool,
) -> int:
    """Store the new state; returns the new version."""
    version = await conn.fetchval(
        "UPDATE tidegate.imports SET status = $2, total_rows = $3, valid_rows = $4,"
        " loaded_rows = $5, failed_rows = $6, chunks_total = coalesce(chunks_total, $7),"
        " chunks_validated = $8, chunks_loaded = $9, error = coalesce(error, $10),"
        " skipped_rows = $12, updated_rows = $13, duplicate_rows = $14, chunks_submitted = $15,"
        " version = version + 1, updated_at = now(),"
        " finished_at = CASE WHEN $11 THEN coalesce(finished_at, now()) END"
        " WHERE id = $1 RETURNING version",
        import_id,
        status,
        counts.total_rows,
        counts.valid_rows,
        counts.loaded_rows,
        counts.failed_rows,
        counts.chunks_total,
        counts.chunks_validated,
        counts.chunks_loaded,
        error,
        finished,
        counts.skipped_rows,
        counts.updated_rows,
        counts.duplicate_rows,
        counts.chunks_submitted,
    )
    return int(version)


async def forget_keys(conn: Conn, import_id: uuid.UUID) -> None:
    """The validator's key claims are needed only while chunks are being validated."""
    await conn.execute("DELETE FROM tidegate.import_key_chunks WHERE import_id = $1", import_id)
