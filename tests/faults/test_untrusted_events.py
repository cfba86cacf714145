"""Events on the topics are untrusted input: a malformed event is dead-lettered without
blocking its partition, events for imports tidegate does not know change nothing, and a
replay of every topic from offset 0 changes nothing either."""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.request
import uuid

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import events, topics
from shared.kafka import cloudevent_headers
from tests.faults.conftest import CHUNKS, Scenario
from tidegate.sample_data import HEADER, rows

WORKERS = ("validator", "loader", "auditor")


async def _produce(
    bootstrap: str, topic: str, event: events.Event, value: bytes | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            events.encode(event),
            key=str(event.import_id).encode(),
            headers=cloudevent_headers(
                events.event_id(event), events.event_type(event), "/test/intruder"
            ),
        )
    finally:
        await producer.stop()


async def _dead_letters(bootstrap: str, wanted: set[str], seconds: float = 60) -> dict[str, str]:
    """ce_id → tg_error of the dead-lettered records among `wanted` ids."""
    consumer = AIOKafkaConsumer(
        topics.DEAD_LETTER, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[str, str] = {}
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while set(found) != wanted and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batch.values() for r in records):
                headers = {k: bytes(v).decode() for k, v in record.headers}
                if headers.get("ce_id") in wanted:
                    found[headers["ce_id"]] = headers["tg_error"]
    finally:
        await consumer.stop()
    return found


async def test_poison_and_unknown_imports_change_nothing(scenario: Scenario) -> None:
    bootstrap = scenario.stack.bootstrap
    good = [list(r) for r in rows(3, start_id=900_001)]
    # 1. rows shorter than the columns, for an import that exists (a running one)
    running = uuid.uuid4()
    await scenario.db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source)"
        " VALUES ($1, $2, $3, 500, 'kafka')",
        running,
        scenario.table,
        HEADER,
    )
    poison = events.ChunkValidated(
        import_id=running,
        seq=0,
        table=scenario.table,
        columns=tuple(HEADER),
        rows=[r[:3] for r in good],
        lines=[2, 3, 4],
        total_rows=3,
        invalid_rows=0,
    )
    # 2. a well-formed chunk.validated the validator never produced, unknown import
    stray_validated = events.ChunkValidated(
        import_id=uuid.uuid4(),
        seq=0,
        table=scenario.table,
        columns=tuple(HEADER),
        rows=good,
        lines=[2, 3, 4],
        total_rows=3,
        invalid_rows=0,
    )
    # 3. the same rows claimed for the running import (known, but never validated)
    forged = msgspec.structs.replace(stray_validated, import_id=running, seq=1)
    # 4. a chunk.loaded for an unknown import
    stray_loaded = events.ChunkLoaded(import_id=uuid.uuid4(), seq=0, loaded_rows=3, failed_rows=0)
    for event in (poison, stray_validated, forged):
        await _produce(bootstrap, topics.CHUNK_VALIDATED, event)
    await _produce(bootstrap, topics.CHUNK_LOADED, stray_loaded)

    ids = {events.event_id(e) for e in (poison, stray_validated, forged, stray_loaded)}
    found = await _dead_letters(bootstrap, ids)
    assert set(found) == ids
    assert "row 0 has 3 cells for 9 columns" in found[events.event_id(poison)]
    assert "not known" in found[events.event_id(stray_validated)]
    assert "not the validator's verdict" in found[events.event_id(forged)]
    assert "unknown import" in found[events.event_id(stray_loaded)]
    assert await scenario.rows_loaded() == 0
    assert (
        await scenario.db.fetchval(
            "SELECT count(*) FROM tidegate.imports WHERE id = ANY($1::uuid[])",
            [stray_validated.import_id, stray_loaded.import_id],
        )
        == 0
    )
    # Loading was not blocked: a real import goes through, row for row.
    await scenario.assert_true_final_state(await scenario.upload())


def _metric(port: int, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _rewind(bootstrap: str, group: str, topic_names: tuple[str, ...]) -> None:
    """Commit offset 0 on every partition of `topic_names` for consumer group `group`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(name, p)
            for name in topic_names
            for p in consumer.partitions_for_topic(name) or ()
        ]
        consumer.assign(partitions)
        await consumer.commit({tp: 0 for tp in partitions})
    finally:
        await consumer.stop()


async def test_replay_from_offset_zero_changes_nothing(scenario: Scenario) -> None:
    import_id = uuid.UUID(await scenario.upload())
    await scenario.assert_true_final_state(str(import_id))
    snapshot = """
        SELECT (SELECT row_to_json(i)::text FROM tidegate.imports i WHERE id = $1),
               (SELECT count(*) FROM tidegate.chunk_ledger WHERE import_id = $1),
               (SELECT count(*) FROM tidegate.chunk_progress WHERE import_id = $1),
               (SELECT count(*) FROM tidegate.row_errors WHERE import_id = $1),
               (SELECT count(*) FROM tidegate.import_key_chunks WHERE import_id = $1),
               (SELECT count(*) FROM tidegate.load_lineage WHERE import_id = $1)
    """
    before = await scenario.db.fetchrow(snapshot, import_id)
    for name in WORKERS:  # a clean stop commits what was applied
        scenario.stack.processes[name].send_signal(signal.SIGTERM)
        scenario.stack.processes[name].wait(60)
    bootstrap = scenario.stack.bootstrap
    await _rewind(bootstrap, "tidegate-validator", (topics.CHUNK_SUBMITTED,))
    await _rewind(bootstrap, "tidegate-loader", (topics.CHUNK_VALIDATED,))
    await _rewind(
        bootstrap,
        "tidegate-auditor",
        (topics.CHUNK_SUBMITTED, topics.CHUNK_VALIDATED, topics.CHUNK_LOADED),
    )
    scenario.restart(*WORKERS)
    await scenario.wait_ready(*WORKERS)
    ports = scenario.stack.ports
    for _ in range(600):
        ignored = _metric(
            ports["validator"],
            "tidegate_events_ignored_total",
            'reason="import_finished",service="validator"',
        )
        loaded = _metric(
            ports["loader"],
            "tidegate_events_consumed_total",
            f'outcome="applied",service="loader",topic="{topics.CHUNK_VALIDATED}"',
        )
        audited = _metric(
            ports["auditor"],
            "tidegate_events_consumed_total",
            f'outcome="applied",service="auditor",topic="{topics.CHUNK_LOADED}"',
        )
        if ignored >= CHUNKS and loaded >= CHUNKS and audited >= CHUNKS:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"replay not consumed: {ignored=} {loaded=} {audited=}")
    assert await scenario.db.fetchrow(snapshot, import_id) == before
    await scenario.assert_true_final_state(str(import_id))
