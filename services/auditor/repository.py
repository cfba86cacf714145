"""SQL of the auditor: imports' state and counts, the per-chunk inbox, row errors, and what
the reconciler reads to find and re-drive the missing steps of a stalled import."""

from __future__ import annotations

import uuid

import asyncpg

from services.auditor.state import Counts
from shared import chunk_store, ledger
from shared.db import Conn
from shared.events import ChunkLoaded, ChunkStored, RowError
from shared.service import DOWN_AFTER_BEATS


async def lock_import(conn: Conn, import_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, status, version, mode, atomic, total_rows, valid_rows, loaded_rows,"
        " failed_rows, skipped_rows, updated_rows, duplicate_rows, chunks_total,"
        " chunks_submitted, chunks_validated, chunks_loaded, chunks_failed, created_at, source"
        " FROM tidegate.imports WHERE id = $1 FOR UPDATE",
        import_id,
    )


async def recorded_verdict(conn: Conn, import_id: uuid.UUID, seq: int) -> asyncpg.Record | None:
    """What the validator recorded of its verdict on this chunk."""
    return await conn.fetchrow(
        "SELECT total_rows, invalid_rows, skipped_rows, duplicate_rows, error_count,"
        " chunk_error FROM tidegate.chunk_verdicts WHERE import_id = $1 AND seq = $2",
        import_id,
        seq,
    )


async def stored_shape(conn: Conn, import_id: uuid.UUID, seq: int) -> asyncpg.Record | None:
    """The row count and `last` flag of the chunk in the chunk store (None if none is; both
    NULL for a chunk stored before the store kept them)."""
    return await conn.fetchrow(
        "SELECT row_count, last FROM tidegate.chunks WHERE import_id = $1 AND seq = $2",
        import_id,
        seq,
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
        " chunks_failed = $16,"
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
        counts.chunks_failed,
    )
    return int(version)


async def stalled_imports(conn: Conn, stall_seconds: float) -> list[asyncpg.Record]:
    """Unfinished imports with no progress (and no re-drive) for `stall_seconds`."""
    return await conn.fetch(
        "SELECT id, mode, redrives, extract(epoch FROM now() - updated_at) AS idle_seconds"
        " FROM tidegate.imports WHERE finished_at IS NULL"
        " AND updated_at < now() - make_interval(secs => $1)"
        " AND (last_redrive_at IS NULL OR last_redrive_at < now() - make_interval(secs => $1))"
        " ORDER BY updated_at LIMIT 100",
        stall_seconds,
    )


async def chunk_records(conn: Conn, import_id: uuid.UUID) -> asyncpg.Record:
    """What PostgreSQL knows of an import's chunks: the seqs in the chunk store, the facts
    counted per stage, and the seqs in the loader's ledger."""
    row = await conn.fetchrow(
        "SELECT (SELECT chunks_total FROM tidegate.imports WHERE id = $1) AS chunks_total,"
        " ARRAY(SELECT seq FROM tidegate.chunks WHERE import_id = $1) AS stored,"
        " ARRAY(SELECT seq FROM tidegate.chunk_progress"
        "  WHERE import_id = $1 AND stage = 'submitted') AS submitted,"
        " ARRAY(SELECT seq FROM tidegate.chunk_progress"
        "  WHERE import_id = $1 AND stage = 'validated') AS validated,"
        " ARRAY(SELECT seq FROM tidegate.chunk_progress"
        "  WHERE import_id = $1 AND stage = 'loaded') AS loaded,"
        " ARRAY(SELECT seq FROM tidegate.chunk_ledger WHERE import_id = $1) AS ledger",
        import_id,
    )
    assert row is not None
    return row


async def ledger_outcomes(conn: Conn, import_id: uuid.UUID, seqs: list[int]) -> list[ChunkLoaded]:
    """The loader's recorded outcome of these chunks, as the events that announced them."""
    rows = await conn.fetch(
        f"SELECT {ledger.OUTCOME_COLUMNS} FROM tidegate.chunk_ledger"
        " WHERE import_id = $1 AND seq = ANY($2::int[]) ORDER BY seq",
        import_id,
        seqs,
    )
    return [ledger.outcome_of(import_id, dict(r)) for r in rows]


async def stored_chunks(conn: Conn, import_id: uuid.UUID, seqs: list[int]) -> list[ChunkStored]:
    """References to these chunks in the chunk store (stored by the gateway, or by the
    validator for an upstream import), to be sent again."""
    rows = await conn.fetch(
        "SELECT seq, row_count, last, CASE WHEN row_count IS NULL THEN payload END AS payload"
        " FROM tidegate.chunks WHERE import_id = $1 AND seq = ANY($2::int[]) ORDER BY seq",
        import_id,
        seqs,
    )
    references = []
    for row in rows:
        if row["payload"] is not None:  # stored before the store kept its counts
            chunk = chunk_store.decode(row["payload"])
            count, last = len(chunk.rows), chunk.last
        else:
            count, last = row["row_count"], row["last"]
        references.append(
            ChunkStored(import_id=import_id, seq=row["seq"], row_count=count, last=last)
        )
    return references


async def mark_redriven(conn: Conn, import_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE tidegate.imports SET redrives = redrives + 1, last_redrive_at = now()"
        " WHERE id = $1",
        import_id,
    )


async def progress_gauges(conn: Conn, stall_seconds: float) -> asyncpg.Record:
    """Unfinished imports, those stuck (re-driven and still without progress), and the age
    of the oldest chunk not yet through the pipeline (that of the oldest unfinished import:
    an import's chunks are submitted when it is accepted)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS unfinished,"
        " count(*) FILTER (WHERE redrives > 0"
        "  AND updated_at < now() - make_interval(secs => $1)) AS stuck,"
        " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest_chunk_seconds"
        " FROM tidegate.imports WHERE finished_at IS NULL",
        stall_seconds,
    )
    assert row is not None
    return row


async def groups_consuming(conn: Conn, heartbeat_seconds: float) -> set[str]:
    """The consumer groups with a member alive and joined: an instance whose heartbeat is
    recent says its consumer loop of the group is running."""
    rows = await conn.fetch(
        "SELECT DISTINCT c->>'group' AS grp FROM tidegate.service_heartbeats h,"
        " jsonb_array_elements(coalesce(h.detail->'consumers', '[]'::jsonb)) AS c"
        " WHERE h.last_seen > now() - make_interval(secs => $1)"
        " AND (c->>'running')::boolean",
        heartbeat_seconds * DOWN_AFTER_BEATS,
    )
    return {r["grp"] for r in rows}
