"""The chunk store (claim check): each chunk's rows are written to PostgreSQL once, by whoever
receives them first, and read back by whoever needs the cells.

- An upload: the gateway stores its chunks and puts a `chunk.stored` reference for each in
  the outbox, in the transaction that records the import.
- An upstream producer's inline `chunk.submitted`: the validator stores the first copy it
  receives; a copy that differs later is refused.
- Readers: the validator (cells to check), the loader (the rows a verdict lets through), the
  failed-rows export and retry, record history, purge. The reconciler re-drives a chunk
  from here, so a broker that lost it loses nothing.
- Kept while anything may still need it, then for `TIDEGATE_RETAIN_CHUNKS_DAYS` after the
  import finished (shared/retention.py).
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Iterable

import msgspec

from shared.db import Conn
from shared.events import ChunkStored, ChunkSubmitted, ChunkValidated, encode, event_id, type_tag
from shared.topics import CHUNK_SUBMITTED as CHUNKS

_submitted = msgspec.msgpack.Decoder(ChunkSubmitted)


class StoredChunk(msgspec.Struct, frozen=True):
    """A chunk as the store keeps it: (seq, rows, last, the encoded chunk.submitted)."""

    seq: int
    row_count: int
    last: bool
    payload: bytes


STORE_BATCH = 16  # chunks per round trip when an upload is stored (~2 MB at 1,000 rows)


async def store_uploaded(conn: Conn, import_id: uuid.UUID, chunks: Iterable[StoredChunk]) -> None:
    """Store an upload's chunks and, for each, its `chunk.stored` reference in the outbox
    (for the relay to publish), `STORE_BATCH` at a time (the chunks are read from the
    upload's spool as they are stored, never all held). Call inside the transaction that
    records the import."""
    source = iter(chunks)
    while batch := list(itertools.islice(source, STORE_BATCH)):
        await conn.executemany(
            "INSERT INTO tidegate.chunks (import_id, seq, row_count, last, payload)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(import_id, c.seq, c.row_count, c.last, c.payload) for c in batch],
        )
        # One partition per import (its id is the key): chunks are validated in order.
        references = [
            ChunkStored(import_id=import_id, seq=c.seq, row_count=c.row_count, last=c.last)
            for c in batch
        ]
        tag, key = type_tag(ChunkStored), str(import_id)
        await conn.executemany(
            "INSERT INTO tidegate.outbox (event_id, event_type, topic, key, payload, import_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [(event_id(r), tag, CHUNKS, key, encode(r), import_id) for r in references],
        )


async def store_received(conn: Conn, event: ChunkSubmitted, payload: bytes) -> bool:
    """Keep an inline chunk (`payload`: the event encoded) unless one is stored under its
    (import, seq) already; True if this copy is now the stored one, False if a different
    copy is (compared by SHA-256 in PostgreSQL, so the stored copy is not read back)."""
    stored = await conn.fetchval(
        "WITH new AS (INSERT INTO tidegate.chunks (import_id, seq, row_count, last, payload)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true)"
        " SELECT coalesce((SELECT true FROM new),"
        "  (SELECT sha256(payload) = $6 FROM tidegate.chunks WHERE import_id = $1 AND seq = $2))",
        event.import_id,
        event.seq,
        len(event.rows),
        event.last,
        payload,
        hashlib.sha256(payload).digest(),
    )
    return stored is True


async def is_stored_copy(conn: Conn, event: ChunkSubmitted, payload: bytes) -> bool:
    """True if `payload` (`event` encoded) is the chunk stored under its (import, seq), byte
    for byte (compared by SHA-256, so the stored copy is not read back)."""
    stored = await conn.fetchval(
        "SELECT sha256(payload) FROM tidegate.chunks WHERE import_id = $1 AND seq = $2",
        event.import_id,
        event.seq,
    )
    return stored is not None and bytes(stored) == hashlib.sha256(payload).digest()


async def read(conn: Conn, import_id: uuid.UUID, seq: int) -> ChunkSubmitted | None:
    """The stored chunk, or None if there is none (never stored, or expired)."""
    payload = await conn.fetchval(
        "SELECT payload FROM tidegate.chunks WHERE import_id = $1 AND seq = $2", import_id, seq
    )
    return None if payload is None else decode(payload)


async def read_many(conn: Conn, import_id: uuid.UUID, seqs: list[int]) -> list[ChunkSubmitted]:
    """The stored chunks of these seqs that there are, in seq order."""
    rows = await conn.fetch(
        "SELECT payload FROM tidegate.chunks WHERE import_id = $1 AND seq = ANY($2::int[])"
        " ORDER BY seq",
        import_id,
        seqs,
    )
    return [decode(row["payload"]) for row in rows]


def decode(payload: bytes) -> ChunkSubmitted:
    return _submitted.decode(payload)


def passed_rows(
    chunk: ChunkSubmitted, verdict: ChunkValidated
) -> tuple[list[list[str]], list[int]]:
    """The rows of a stored chunk that a verdict lets through, with the validator's changes
    applied, and their lines."""
    changed: dict[int, list[tuple[int, str]]] = {}
    for change in verdict.changes:
        changed.setdefault(change.row, []).append((change.column, change.value))
    dropped = set(verdict.dropped)
    lines = chunk.line_numbers()
    rows, kept = [], []
    for i, row in enumerate(chunk.rows):
        if i in dropped:
            continue
        cells = row
        if i in changed:
            cells = list(row)
            for column, value in changed[i]:
                cells[column] = value
        rows.append(cells)
        kept.append(lines[i])
    return rows, kept
