"""The loader on the real PostgreSQL: exactly-once per chunk, refused rows isolated."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from services.loader.handlers import ChunkLoader
from shared import chunk_store
from shared.catalog import TableCache
from shared.events import ChunkLoaded, ChunkSubmitted, ChunkValidated, Event, digest, encode
from shared.kafka.records import Delivery, Outgoing
from tidegate.sample_data import HEADER, TABLE_SQL, rows


@pytest.fixture
async def table(db: asyncpg.Connection) -> str:
    name = f"public.loader_{uuid.uuid4().hex[:8]}"
    await db.execute(TABLE_SQL.format(table=name))
    return name


async def admitted(
    db: asyncpg.Connection,
    table: str,
    data: list[list[str]],
    import_id: uuid.UUID | None = None,
    seq: int = 0,
    first_line: int = 2,
) -> ChunkValidated:
    """A chunk of an import (a new one unless `import_id`), stored, and the validator's
    verdict letting all of it through, registered as the validator does."""
    submitted = ChunkSubmitted(
        import_id=import_id or uuid.uuid4(),
        seq=seq,
        table=table,
        columns=tuple(HEADER),
        rows=data,
        first_line=first_line,
    )
    event = ChunkValidated(
        import_id=submitted.import_id,
        seq=seq,
        table=table,
        columns=tuple(HEADER),
        total_rows=len(data),
        invalid_rows=0,
    )
    async with db.transaction():
        assert await chunk_store.store_received(db, submitted, encode(submitted))
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source)"
        " VALUES ($1, $2, $3, 1, 'kafka') ON CONFLICT DO NOTHING",
        event.import_id,
        event.table,
        list(event.columns),
    )
    await db.execute(
        "INSERT INTO tidegate.chunk_verdicts (import_id, seq, digest) VALUES ($1, $2, $3)",
        event.import_id,
        event.seq,
        digest(event),
    )
    return event


async def no_backup(_: object, __: uuid.UUID, ___: uuid.UUID) -> None:
    """These imports ask for no backup before their first chunk: never called."""
    raise AssertionError("no import of these tests asked for a backup")


def loader(pool: asyncpg.Pool) -> ChunkLoader:
    return ChunkLoader(pool, TableCache(["public"]), 0.01, no_backup, max_rows=10_000)


async def test_the_same_chunk_twice_and_concurrently_loads_once(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> None:
    event = await admitted(db, table, list(rows(500)))
    chunk_loader = loader(pool)

    async def load() -> tuple[int, int]:
        async with pool.acquire() as conn:
            outcome = await chunk_loader.load(conn, event)
        return outcome.loaded_rows, outcome.failed_rows

    outcomes = await asyncio.gather(load(), load(), load())
    assert list(outcomes) == [(500, 0)] * 3  # later ones re-announce the recorded outcome
    assert await load() == (500, 0)
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 500
    # Loaded with COPY in the chunk's own transaction: one lineage row, whose transaction id
    # every row carries as xmin.
    lineage = await db.fetch(
        "SELECT xid::text::bigint % 4294967296 AS xid, digests, jsonb_array_length(keys) AS n"
        " FROM tidegate.load_lineage WHERE import_id = $1",
        event.import_id,
    )
    assert [(r["digests"], r["n"]) for r in lineage] == [(None, 500)]
    xmins = await db.fetch(f"SELECT DISTINCT xmin::text::bigint AS x FROM {table}")
    assert [r["x"] for r in xmins] == [lineage[0]["xid"]]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.chunk_ledger WHERE import_id = $1", event.import_id
        )
        == 1
    )


async def chunks_of_one_import(
    db: asyncpg.Connection, table: str, data: list[list[str]], size: int
) -> list[tuple[Event, Delivery]]:
    """`data` as consecutive admitted chunks of one import, as a fetched batch."""
    import_id = uuid.uuid4()
    return [
        (
            await admitted(db, table, data[at : at + size], import_id, seq, first_line=2 + at),
            Delivery("t", 0, seq),
        )
        for seq, at in enumerate(range(0, len(data), size))
    ]


async def batch_load(
    chunk_loader: ChunkLoader,
    batch: list[tuple[Event, Delivery]],
    one: Callable[[Event, Delivery], Awaitable[list[Outgoing]]],
) -> list[Outgoing]:
    """Every event the batch handler yields for `batch`."""
    return [o async for part in chunk_loader.handle_batch(batch, one) for o in part]


def loaded(outgoing: list[Outgoing]) -> list[ChunkLoaded]:
    """The chunk.loaded events of a handler's outgoing events."""
    outcomes = [event for _, event, _ in outgoing]
    assert all(isinstance(o, ChunkLoaded) for o in outcomes)
    return [o for o in outcomes if isinstance(o, ChunkLoaded)]


async def test_chunks_fetched_together_load_in_one_transaction(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> None:
    """Group commit: consecutive chunks of an import load at once, with a ledger entry and
    a lineage row each (their keys, the one transaction's id, which every row carries);
    delivered again, they are only re-announced."""
    data = list(rows(300))
    batch = await chunks_of_one_import(db, table, data, 100)
    chunk_loader = loader(pool)
    handled: list[int] = []

    async def one(event: Event, delivery: Delivery) -> list[Outgoing]:
        handled.append(delivery.offset)
        return await chunk_loader.handle(event, delivery)

    outgoing = loaded(await batch_load(chunk_loader, batch, one))
    assert handled == []  # none went one by one
    assert [(o.seq, o.loaded_rows, o.failed_rows) for o in outgoing] == [
        (0, 100, 0),
        (1, 100, 0),
        (2, 100, 0),
    ]
    import_id = outgoing[0].import_id
    lineage = await db.fetch(
        "SELECT seq, xid::text::bigint % 4294967296 AS xid,"
        " (SELECT array_agg((k->>0)::bigint ORDER BY k->>0) FROM jsonb_array_elements(keys) k)"
        " AS ids FROM tidegate.load_lineage WHERE import_id = $1 ORDER BY seq",
        import_id,
    )
    assert [(r["seq"], sorted(r["ids"])) for r in lineage] == [
        (seq, sorted(int(row[0]) for row in data[seq * 100 : seq * 100 + 100])) for seq in range(3)
    ]
    assert len({r["xid"] for r in lineage}) == 1
    xmins = await db.fetch(f"SELECT DISTINCT xmin::text::bigint AS x FROM {table}")
    assert [r["x"] for r in xmins] == [lineage[0]["xid"]]
    ledger = await db.fetch(
        "SELECT seq, loaded_rows FROM tidegate.chunk_ledger WHERE import_id = $1 ORDER BY seq",
        import_id,
    )
    assert [tuple(r) for r in ledger] == [(0, 100), (1, 100), (2, 100)]

    again = loaded(await batch_load(chunk_loader, batch, one))
    assert handled == [0, 1, 2]  # already loaded: re-announced one by one
    assert again == outgoing
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 300


async def test_two_loaders_given_the_same_chunks_together_load_them_once(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> None:
    """Two replicas handed the same batch (a rebalance redelivers it): the second's claim
    waits on the first's uncommitted ledger rows, then finds the chunks claimed and only
    re-announces them."""
    batch = await chunks_of_one_import(db, table, list(rows(300)), 100)
    first, second = loader(pool), loader(pool)
    outcomes = await asyncio.gather(
        batch_load(first, batch, first.handle), batch_load(second, batch, second.handle)
    )
    assert loaded(outcomes[0]) == loaded(outcomes[1])
    assert [(o.seq, o.loaded_rows) for o in loaded(outcomes[0])] == [(0, 100), (1, 100), (2, 100)]
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 300
    lineage = await db.fetchval(
        "SELECT count(*) FROM tidegate.load_lineage WHERE import_id = $1",
        loaded(outcomes[0])[0].import_id,
    )
    assert lineage == 3


async def test_a_run_the_database_refuses_loads_one_by_one(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> None:
    """One refused row in a run: nothing of the run's transaction stays; each chunk then
    loads on its own, the refused row isolated, the other chunks whole."""
    data = list(rows(300))
    data[150][2] = data[20][2]  # chunk 1 repeats an email of chunk 0
    batch = await chunks_of_one_import(db, table, data, 100)
    chunk_loader = loader(pool)
    outgoing = loaded(await batch_load(chunk_loader, batch, chunk_loader.handle))
    assert [(o.seq, o.loaded_rows, o.failed_rows) for o in outgoing] == [
        (0, 100, 0),
        (1, 99, 1),
        (2, 100, 0),
    ]
    assert [(e.line, e.code) for e in outgoing[1].errors] == [(152, "duplicate_in_table")]
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 299
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.load_lineage WHERE import_id = $1",
            outgoing[0].import_id,
        )
        >= 3
    )


async def test_a_refused_group_is_an_attempt_at_each_of_its_chunks(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> None:
    """A serialization failure refuses the transaction of chunks loaded together: the
    journal records it as the first attempt at each, and each then loads alone (so
    `auto_retry` bounds the attempts the database sees of any chunk)."""
    name = table.split(".")[1]
    await db.execute(
        f"CREATE SEQUENCE {name}_attempts;"
        f" CREATE FUNCTION {name}_flaky() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF nextval('{name}_attempts') = 1 THEN RAISE EXCEPTION 'refused on purpose'"
        " USING ERRCODE = 'serialization_failure'; END IF; RETURN NULL; END $$;"
        f" CREATE TRIGGER flaky AFTER INSERT ON {table} FOR EACH STATEMENT"
        f" EXECUTE FUNCTION {name}_flaky()"
    )
    batch = await chunks_of_one_import(db, table, list(rows(300)), 100)

    async def one(event: Event, delivery: Delivery) -> list[Outgoing]:
        raise AssertionError(f"chunk {delivery.offset} was not handled by the loader itself")

    outgoing = loaded(await batch_load(loader(pool), batch, one))
    assert [(o.seq, o.loaded_rows, o.chunk_error) for o in outgoing] == [
        (0, 100, None),
        (1, 100, None),
        (2, 100, None),
    ]
    assert await db.fetchval(f"SELECT last_value FROM {name}_attempts") == 4  # group + 3
    refusals = await db.fetch(
        "SELECT seq, detail->>'attempt' AS attempt FROM tidegate.import_journal"
        " WHERE import_id = $1 AND kind = 'attempt_refused' ORDER BY seq",
        outgoing[0].import_id,
    )
    assert [(r["seq"], r["attempt"]) for r in refusals] == [(0, "1"), (1, "1"), (2, "1")]


async def test_refused_rows_are_isolated_and_the_rest_loads(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> None:
    data = list(rows(100))
    data[10][0] = data[3][0]  # duplicate primary key within the chunk
    data[57][2] = data[20][2]  # duplicate email
    data[80][5] = "99999999999.99"  # 11 digits before the point: numeric(12,2) overflows
    await db.execute(f"ALTER TABLE {table} ADD CHECK (city <> 'Malmö')")
    malmo = [i for i, r in enumerate(data) if r[3] == "Malmö"]
    event = await admitted(db, table, data)
    async with pool.acquire() as conn:
        outcome = await loader(pool).load(conn, event)
    refused = {e.line - 2: e.code for e in outcome.errors}
    expected = {10: "duplicate_in_table", 57: "duplicate_in_table", 80: "out_of_range"}
    expected |= {i: "check_violation" for i in malmo}
    assert refused == expected
    assert (outcome.loaded_rows, outcome.failed_rows) == (100 - len(expected), len(expected))
    ids = {r[0] for r in await db.fetch(f"SELECT id FROM {table}")}
    assert ids == {int(r[0]) for i, r in enumerate(data) if i not in expected}
    keys = await db.fetch(
        "SELECT keys, digests, xid FROM tidegate.load_lineage WHERE import_id = $1",
        event.import_id,
    )
    lineage = {k[0] for record in keys for k in json.loads(record["keys"])}
    assert lineage == ids
    # The COPY was refused and rolled back: the statements' lineage (digests) is all there is.
    assert all(r["xid"] is None and r["digests"] is not None for r in keys)


async def test_a_dropped_table_fails_the_chunk_not_the_loader(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> None:
    event = await admitted(db, table, list(rows(5)))
    await db.execute(f"DROP TABLE {table}")
    async with pool.acquire() as conn:
        outcome = await loader(pool).load(conn, event)
    assert (outcome.loaded_rows, outcome.failed_rows) == (0, 5)
    assert outcome.chunk_error is not None
    # Redelivered, the chunk is re-announced from the ledger: still a failed chunk, with
    # its reason, so the import fails (it ended completed_with_errors when the ledger lost
    # the reason).
    async with pool.acquire() as conn:
        again = await loader(pool).load(conn, event)
    assert (again.loaded_rows, again.failed_rows) == (0, 5)
    assert again.chunk_error == outcome.chunk_error
