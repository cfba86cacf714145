"""The auditor's reconciler, running in the session's auditor (defaults: re-drive after
30 s without progress, give up after 900 s): a chunk the loader recorded but whose
chunk.loaded event was lost is counted from the ledger, and an import that cannot make
progress is failed with what is missing, freeing its slot."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from prometheus_client import REGISTRY

from services.auditor.reconciler import RECONCILER_LOCK
from shared import operations
from tests.conftest import Running, wait_final


async def _import(
    db: asyncpg.Connection, *, idle_seconds: int, chunks_total: int | None
) -> uuid.UUID:
    import_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source,"
        " chunks_total, status, updated_at)"
        " VALUES ($1, 'public.nowhere', '{id}', 5, 'kafka', $2, 'loading',"
        " now() - make_interval(secs => $3))",
        import_id,
        chunks_total,
        idle_seconds,
    )
    return import_id


async def _validated_chunk(db: asyncpg.Connection, import_id: uuid.UUID) -> None:
    """Chunk 0 (5 rows) of the import was submitted and validated, and its loaded event
    was lost."""
    for stage in ("submitted", "validated"):
        await db.execute(
            "INSERT INTO tidegate.chunk_progress (import_id, seq, stage, rows_in, rows_ok,"
            " rows_failed) VALUES ($1, 0, $2, 5, 5, 0)",
            import_id,
            stage,
        )
    await db.execute(
        "UPDATE tidegate.imports SET total_rows = 5, valid_rows = 5, chunks_submitted = 1,"
        " chunks_validated = 1 WHERE id = $1",
        import_id,
    )


async def test_a_lost_loaded_fact_is_counted_from_the_ledger(
    db: asyncpg.Connection, services: Running
) -> None:
    import_id = await _import(db, idle_seconds=60, chunks_total=1)
    await _validated_chunk(db, import_id)
    await db.execute(
        "INSERT INTO tidegate.chunk_ledger (import_id, seq, loaded_rows, failed_rows)"
        " VALUES ($1, 0, 5, 0)",
        import_id,
    )
    final = await wait_final(db, str(import_id), seconds=30)
    assert (final["status"], final["loaded_rows"], final["chunks_loaded"]) == ("completed", 5, 1)


async def test_a_lost_failed_chunk_counted_from_the_ledger_fails_its_import(
    db: asyncpg.Connection, services: Running
) -> None:
    """The ledger keeps why a chunk failed as a whole: counted by the reconciler, it fails
    the import with that reason (it ended completed_with_errors, with no error)."""
    import_id = await _import(db, idle_seconds=60, chunks_total=1)
    await _validated_chunk(db, import_id)
    await db.execute(
        "INSERT INTO tidegate.chunk_ledger (import_id, seq, loaded_rows, failed_rows,"
        " chunk_error) VALUES ($1, 0, 0, 5, 'table public.nowhere no longer exists')",
        import_id,
    )
    final = await wait_final(db, str(import_id), seconds=30)
    assert (final["status"], final["failed_rows"]) == ("failed", 5)
    assert "no longer exists" in final["error"]


async def test_an_import_without_progress_is_failed_with_what_is_missing(
    db: asyncpg.Connection, services: Running
) -> None:
    import_id = await _import(db, idle_seconds=3600, chunks_total=None)
    await db.execute(
        "INSERT INTO tidegate.chunk_progress (import_id, seq, stage, rows_in, rows_ok,"
        " rows_failed) VALUES ($1, 0, 'submitted', 5, 5, 0)",
        import_id,
    )
    final = await wait_final(db, str(import_id), seconds=30)
    assert final["status"] == "failed"
    assert final["finished_at"] is not None  # the concurrency slot is free
    assert "no progress for 900 s" in final["error"]
    assert (
        "chunks [0] not through validation and loading, and tidegate holds no copy"
        in final["error"]
    )


async def test_a_lost_operation_command_is_sent_again(
    db: asyncpg.Connection, services: Running
) -> None:
    """The command was published and then lost (a broker that forgets): the operation
    stays pending until the reconciler sends it again from the outbox."""
    table = f"public.lost_{uuid.uuid4().hex[:8]}"
    await db.execute(
        f"CREATE TABLE {table} (id integer PRIMARY KEY); INSERT INTO {table} VALUES (1)"
    )
    async with db.transaction():
        backup_id, op = await operations.request_backup(
            db, tables=[table], reason="lost command", trigger="request"
        )
        await db.execute(
            "UPDATE tidegate.outbox SET published_at = now() WHERE event_id = $1",
            f"operation:{op['id']}:requested",
        )
        await db.execute(
            "UPDATE tidegate.operations SET updated_at = now() - interval '60 seconds'"
            " WHERE id = $1",
            op["id"],
        )
    status = "pending"
    for _ in range(300):
        status = await db.fetchval("SELECT status FROM tidegate.operations WHERE id = $1", op["id"])
        if status != "pending":
            break
        await asyncio.sleep(0.1)
    attempts = await db.fetchval("SELECT attempts FROM tidegate.operations WHERE id = $1", op["id"])
    assert (status, attempts) == ("completed", 1)  # sent once more, by the reconciler
    backup = await db.fetchrow(
        "SELECT status, row_counts FROM tidegate.backups WHERE id = $1", backup_id
    )
    assert backup is not None
    assert (backup["status"], backup["row_counts"]) == ("completed", f'{{"{table}": 1}}')


async def test_an_operation_in_hand_never_blocks_the_pass(
    db: asyncpg.Connection, services: Running, database_url: str
) -> None:
    """A pending operation whose row another transaction holds (the loader running a long
    backup) is in hand: the reconciler neither waits for it nor sends its command again,
    and its passes go on. It waited behind the lock for the lock timeout (60 s) on every
    pass."""
    table = f"public.held_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY)")
    async with db.transaction():
        _, op = await operations.request_backup(
            db, tables=[table], reason="long backup", trigger="request"
        )
        await db.execute(
            "UPDATE tidegate.outbox SET published_at = now() WHERE event_id = $1",
            f"operation:{op['id']}:requested",
        )
    holder = await asyncpg.connect(database_url)
    try:
        # Set up between two passes: the operation stale, and its row held.
        await db.execute("SELECT pg_advisory_lock($1)", RECONCILER_LOCK)
        await db.execute(
            "UPDATE tidegate.operations SET updated_at = now() - interval '60 seconds'"
            " WHERE id = $1",
            op["id"],
        )
        async with holder.transaction():
            await holder.execute(  # as the loader's FOR UPDATE holds it while it runs
                "SELECT 1 FROM tidegate.operations WHERE id = $1 FOR UPDATE", op["id"]
            )
            await db.execute("SELECT pg_advisory_unlock($1)", RECONCILER_LOCK)
            await asyncio.sleep(6)  # a pass meets the held operation
            before = REGISTRY.get_sample_value("tidegate_reconciler_passes_total") or 0.0
            await asyncio.sleep(12)  # the session's auditor looks every 5 s
            passes = (REGISTRY.get_sample_value("tidegate_reconciler_passes_total") or 0) - before
            assert passes >= 2, "the reconciler's passes stopped behind a held operation"
            attempts = await db.fetchval(
                "SELECT attempts FROM tidegate.operations WHERE id = $1", op["id"]
            )
        assert attempts == 0  # not sent again while in hand
    finally:
        await holder.close()
