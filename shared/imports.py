"""What more than one service does to an import's records in PostgreSQL.

- An import produced straight onto the topics by an upstream system is registered by its
  first `chunk.submitted` event: whichever of the validator and the auditor sees it first
  inserts the row (both derive the same row from the event). Its owner is the producer's
  CloudEvents `ce_source`. Events of any other kind for an unknown import are never applied.
- Submitted chunks are kept in the chunk store (shared/chunk_store.py), so the reconciler
  can re-drive either kind from PostgreSQL.
- Failing an import outside the auditor's flow of facts: the reconciler giving up on an
  import that makes no progress, or an admin's escape hatch; cancelling one. What a failed
  or cancelled import had loaded is then rolled back (shared/operations.py).
- The import lock: the loader holds it shared while it loads a chunk, and exclusively while
  it rolls the import back, so a rollback sees every chunk that will ever be loaded (a chunk
  admitted after the import finished is not loaded).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from shared import journal, operations
from shared.db import Conn
from shared.events import Mode


async def register_import(
    conn: Conn,
    *,
    import_id: uuid.UUID,
    table: str,
    columns: Sequence[str],
    chunk_size: int,
    mode: Mode,
    producer: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO tidegate.imports"
        " (id, target_table, columns, chunk_size, source, mode, producer)"
        " VALUES ($1, $2, $3, $4, 'kafka', $5, $6) ON CONFLICT (id) DO NOTHING",
        import_id,
        table,
        list(columns),
        max(chunk_size, 1),
        mode,
        producer,
    )


class ImportState(msgspec.Struct, frozen=True):
    finished: bool
    upstream: bool  # produced straight onto the topics
    auto_retry: int = 3


async def import_state(conn: Conn, import_id: uuid.UUID) -> ImportState | None:
    """None for an import tidegate does not know."""
    row = await conn.fetchrow(
        "SELECT finished_at IS NOT NULL AS finished, source = 'kafka' AS upstream, auto_retry"
        " FROM tidegate.imports WHERE id = $1",
        import_id,
    )
    return None if row is None else ImportState(row["finished"], row["upstream"], row["auto_retry"])


def _lock_key(import_id: uuid.UUID) -> int:
    """The advisory lock id of an import (the high 63 bits of its UUID, as a bigint)."""
    return import_id.int >> 65


async def hold_for_load(conn: Conn, import_id: uuid.UUID) -> None:
    """Until the transaction ends: no rollback of the import runs meanwhile."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", _lock_key(import_id))


async def hold_for_rollback(conn: Conn, import_id: uuid.UUID) -> None:
    """Until the transaction ends: waits for the chunks being loaded, and no other starts."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(import_id))


async def fail_import(conn: Conn, import_id: uuid.UUID, reason: str, by: str) -> int | None:
    """Mark an unfinished import failed (its concurrency slot is freed, the validator's key
    claims dropped, what it loaded rolled back if it asked for that); returns the new
    version, or None if it had already finished."""
    return await _finish_early(conn, import_id, "failed", reason, by)


async def cancel_import(conn: Conn, import_id: uuid.UUID, reason: str, by: str) -> int | None:
    """Stop an unfinished import: chunks not yet loaded are dropped (the validator and the
    loader ignore an import that has finished), what it loaded is rolled back, and its
    slot is freed. Returns the new version, or None if it had already finished."""
    return await _finish_early(conn, import_id, "cancelled", reason, by)


async def _finish_early(
    conn: Conn, import_id: uuid.UUID, status: str, reason: str, by: str
) -> int | None:
    """`by`: the service that finishes the import (for its journal)."""
    version = await conn.fetchval(
        "UPDATE tidegate.imports SET status = $2, error = $3, finished_at = now(),"
        " updated_at = now(), version = version + 1"
        " WHERE id = $1 AND finished_at IS NULL RETURNING version",
        import_id,
        status,
        reason,
    )
    if version is None:
        return None
    await journal.note(conn, import_id, by, "status", status=status, error=reason)
    await forget_key_claims(conn, import_id)
    await operations.rollback_after_failure(
        conn, import_id, "cancel" if status == "cancelled" else "failure"
    )
    return int(version)


async def running_into(conn: Conn, tables: Sequence[str]) -> list[uuid.UUID]:
    """Unfinished imports into any of `tables` (a few of them)."""
    rows = await conn.fetch(
        "SELECT id FROM tidegate.imports WHERE target_table = ANY($1::text[])"
        " AND finished_at IS NULL ORDER BY created_at LIMIT 10",
        list(tables),
    )
    return [r["id"] for r in rows]


async def forget_key_claims(conn: Conn, import_id: uuid.UUID) -> None:
    """The validator's key claims are needed only while an import's chunks are validated."""
    await conn.execute("DELETE FROM tidegate.import_key_chunks WHERE import_id = $1", import_id)
