"""What more than one service does to `tidegate.imports`.

- An import produced straight onto the topics by an upstream system is registered by its
  first `chunk.submitted` event: whichever of the validator and the auditor sees it first
  inserts the row (both derive the same row from the event). Its owner is the producer's
  CloudEvents `ce_source`. Events of any other kind for an unknown import are never applied.
- Failing an import outside the auditor's flow of facts: the reconciler giving up on an
  import that makes no progress, or an admin's escape hatch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

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


async def import_state(conn: Conn, import_id: uuid.UUID) -> tuple[bool, bool]:
    """(known, finished) for an import id."""
    row = await conn.fetchrow(
        "SELECT finished_at IS NOT NULL AS finished FROM tidegate.imports WHERE id = $1",
        import_id,
    )
    return (False, False) if row is None else (True, bool(row["finished"]))


async def fail_import(conn: Conn, import_id: uuid.UUID, reason: str) -> int | None:
    """Mark an unfinished import failed (its concurrency slot is freed and the validator's
    key claims dropped); returns the new version, or None if it had already finished."""
    version = await conn.fetchval(
        "UPDATE tidegate.imports SET status = 'failed', error = $2, finished_at = now(),"
        " updated_at = now(), version = version + 1"
        " WHERE id = $1 AND finished_at IS NULL RETURNING version",
        import_id,
        reason,
    )
    if version is not None:
        await conn.execute("DELETE FROM tidegate.import_key_chunks WHERE import_id = $1", import_id)
    return None if version is None else int(version)
