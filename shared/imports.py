"""What more than one service does to an import's records in PostgreSQL.

- An import produced straight onto the topics by an upstream system is registered by its
  first `chunk.submitted` event: whichever of the validator and the auditor sees it first
  inserts the row (both derive the same row from the event). Its owner is the producer's
  CloudEvents `ce_source`. Events of any other kind for an unknown import are never applied.
- Submitted chunks are kept in the outbox: the gateway stores each before it is published;
  the validator stores a copy of each upstream chunk it validates (marked published), so
  the reconciler can re-drive either kind from PostgreSQL.
- Failing an import outside the auditor's flow of facts: the reconciler giving up on an
  import that makes no progress, or an admin's escape hatch; cancelling one. What a failed
  or cancelled import had loaded is then rolled back (shared/operations.py).
- The import lock: the loader holds it shared while it loads a chunk, and exclusively while
  it rolls the import back, so a rollback sees every chunk that will ever be loaded (a chunk
  admitted after the import finished is not loaded).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import msgspec

from shared import journal, operations, topics
from shared.db import Conn
from shared.events import ChunkSubmitted, Mode, encode, event_id, type_tag


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


async def store_chunk(
    conn: Conn, event: ChunkSubmitted, *, published: bool, payload: bytes | None = None
) -> None:
    """Keep a chunk.submitted event in the outbox (`payload`: the event already encoded).
    Unpublished, the relay publishes it; either way the reconciler can re-drive it. A
    chunk already stored is left as it is."""
    await store_encoded_chunk(
        conn,
        event.import_id,
        event.seq,
        encode(event) if payload is None else payload,
        published=published,
    )


async def store_encoded_chunk(
    conn: Conn, import_id: uuid.UUID, seq: int, payload: bytes, *, published: bool
) -> None:
    """`store_chunk` of a chunk.submitted event already encoded."""
    await conn.execute(
        "INSERT INTO tidegate.outbox"
        " (event_id, event_type, topic, key, payload, import_id, published_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END)"
        " ON CONFLICT (event_id) DO NOTHING",
        f"{import_id}:{seq}:submitted",  # as events.event_id says
        type_tag(ChunkSubmitted),
        topics.CHUNK_SUBMITTED,
        str(import_id),  # one partition per import: chunks are validated in order
        payload,
        import_id,
        published,
    )


async def matches_stored_copy(
    conn: Conn, event: ChunkSubmitted, payload: bytes, *, required: bool
) -> bool:
    """True if `payload` (`event` encoded) is the chunk stored in the outbox under the
    event's id, byte for byte (compared by SHA-256, so the copy is not read back); when
    none is stored, `not required`."""
    stored = await conn.fetchval(
        "SELECT sha256(payload) FROM tidegate.outbox WHERE event_id = $1", event_id(event)
    )
    if stored is None:
        return not required
    return bytes(stored) == hashlib.sha256(payload).digest()


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
