"""Chunk events of a known import are checked against what tidegate recorded (issue 19,
item 11): a chunk.submitted unlike the gateway's stored copy is not validated, and a
chunk.validated or chunk.loaded that the validator or the loader never produced is not
counted, so a forged `invalid_rows = total` cannot fail an import and start its rollback."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from shared import chunk_store, events, topics
from tests.conftest import Running
from tests.faults.test_untrusted_events import _dead_letters, _produce
from tidegate.sample_data import HEADER, rows

GOOD = [list(r) for r in rows(5, start_id=700_001)]


async def _gateway_import(db: asyncpg.Connection, table: str) -> events.ChunkSubmitted:
    """An upload's import, its one chunk stored by the gateway, not yet
    validated."""
    chunk = events.ChunkSubmitted(
        import_id=uuid.uuid4(),
        seq=0,
        table=table,
        columns=tuple(HEADER),
        rows=GOOD,
        lines=list(range(2, 7)),
        last=True,
    )
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source,"
        " chunks_total, status) VALUES ($1, $2, $3, 5, 'http', 1, 'validating')",
        chunk.import_id,
        table,
        list(HEADER),
    )
    async with db.transaction():
        assert await chunk_store.store_received(db, chunk, events.encode(chunk))
    return chunk


async def test_forged_chunk_events_of_a_gateway_import_change_nothing(
    services: Running, db: asyncpg.Connection, customers: str, bootstrap: str
) -> None:
    chunk = await _gateway_import(db, customers)
    other_rows = events.ChunkSubmitted(
        import_id=chunk.import_id,
        seq=0,
        table=customers,
        columns=tuple(HEADER),
        rows=[list(r) for r in rows(4, start_id=800_001)],
        lines=list(range(2, 6)),
        last=True,
    )
    all_invalid = events.ChunkValidated(
        import_id=chunk.import_id,
        seq=0,
        table=customers,
        columns=tuple(HEADER),
        dropped=list(range(5)),
        total_rows=5,
        invalid_rows=5,
    )
    unstored = events.ChunkStored(import_id=chunk.import_id, seq=7, row_count=5)
    all_failed = events.ChunkLoaded(import_id=chunk.import_id, seq=0, loaded_rows=0, failed_rows=5)
    await _produce(bootstrap, topics.CHUNK_SUBMITTED, other_rows)
    await _produce(bootstrap, topics.CHUNK_VALIDATED, all_invalid)
    await _produce(bootstrap, topics.CHUNK_LOADED, all_failed)
    await _produce(bootstrap, topics.CHUNK_SUBMITTED, unstored)
    validator, auditor = "tidegate-validator", "tidegate-auditor"
    expected = {
        (events.event_id(unstored), validator): "not in the chunk store",
        (events.event_id(unstored), auditor): "not what tidegate recorded",
        (events.event_id(other_rows), validator): "not the copy tidegate stored",
        (events.event_id(other_rows), auditor): "not what tidegate recorded",
        (events.event_id(all_invalid), auditor): "not what tidegate recorded",
        (events.event_id(all_failed), auditor): "not what tidegate recorded",
    }
    found = await _dead_letters(bootstrap, set(expected))
    assert set(found) == set(expected)
    for where, reason in expected.items():
        assert reason in found[where], (where, found[where])
    await asyncio.sleep(1)
    imp = await db.fetchrow(
        "SELECT status, chunks_submitted, chunks_validated, chunks_loaded, failed_rows"
        " FROM tidegate.imports WHERE id = $1",
        chunk.import_id,
    )
    assert imp is not None
    assert tuple(imp) == ("validating", 0, 0, 0, 0)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.chunk_verdicts WHERE import_id = $1", chunk.import_id
        )
        == 0
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.operations WHERE import_id = $1", chunk.import_id
        )
        == 0
    )
