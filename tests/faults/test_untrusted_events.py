"""Events on the topics are untrusted input: a malformed event is dead-lettered without
blocking its partition, events for imports tidegate does not know change nothing, and a
replay of every topic from offset 0 changes nothing either."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
import uuid

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import events, topics
from shared.kafka.admin import log_ends
from shared.kafka.records import cloudevent_headers
from tests.faults.conftest import CHUNKS, Scenario
from tidegate.keys import create_key
from tidegate.sample_data import HEADER

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
            key=str(getattr(event, "import_id", "")).encode(),
            headers=cloudevent_headers(
                events.event_id(event), events.event_type(event), "/test/intruder"
            ),
        )
    finally:
        await producer.stop()


async def _dead_letters(
    bootstrap: str, wanted: set[tuple[str, str]], seconds: float = 60
) -> dict[tuple[str, str], str]:
    """(ce_id, consumer group) → tg_error of the dead-lettered records `wanted`."""
    consumer = AIOKafkaConsumer(
        topics.DEAD_LETTER, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[tuple[str, str], str] = {}
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while set(found) != wanted and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batch.values() for r in records):
                headers = {k: bytes(v).decode() for k, v in record.headers}
                where = (headers.get("ce_id", ""), headers.get("tg_consumer_group", ""))
                if where in wanted:
                    found[where] = headers["tg_error"]
    finally:
        await consumer.stop()
    return found


async def test_poison_and_unknown_imports_change_nothing(scenario: Scenario) -> None:
    bootstrap = scenario.stack.bootstrap
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
        dropped=[5],
        total_rows=3,
        invalid_rows=1,
    )
    # 2. a well-formed chunk.validated the validator never produced, unknown import
    stray_validated = events.ChunkValidated(
        import_id=uuid.uuid4(),
        seq=0,
        table=scenario.table,
        columns=tuple(HEADER),
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

    loader, auditor = "tidegate-loader", "tidegate-auditor"
    expected = {
        (events.event_id(poison), loader): "dropped row 5 beyond total_rows",
        (events.event_id(stray_validated), loader): "is not known",
        (events.event_id(stray_validated), auditor): "unknown import",
        (events.event_id(forged), loader): "not the validator's verdict",
        # The auditor no longer counts a verdict of a known import the validator never gave.
        (events.event_id(forged), auditor): "not what tidegate recorded",
        (events.event_id(poison), auditor): "not what tidegate recorded",
        (events.event_id(stray_loaded), auditor): "unknown import",
    }
    found = await _dead_letters(bootstrap, set(expected))
    assert set(found) == set(expected)
    for where, reason in expected.items():
        assert reason in found[where], (where, found[where])
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
    # The import that will never get a real chunk: an admin fails it by hand (the CLI).
    admin = await create_key(scenario.postgres.url, "fault admin", "admin")
    fail = [sys.executable, "-m", "tidegate.cli", "imports", "fail", str(running)]
    fail += ["--api", scenario.stack.api_url, "--api-key", admin, "--reason", "poisoned"]
    done = await asyncio.to_thread(_run, fail)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "failed"
    again = await asyncio.to_thread(_run, fail)
    assert again.returncode == 2 and "Import already finished" in again.stderr
    row = await scenario.db.fetchrow("SELECT * FROM tidegate.imports WHERE id = $1", running)
    assert row is not None and row["finished_at"] is not None and "poisoned" in row["error"]
    audit = await scenario.db.fetchval(
        "SELECT count(*) FROM tidegate.audit_log WHERE action = 'imports.fail' AND target = $1"
        " AND outcome = 'success'",
        str(running),
    )
    assert audit == 1


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _metric(port: int, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _replay_everything(bootstrap: str) -> int:
    """Deliver every event of the chunk topics again: read each topic from offset 0 to its
    end and produce each record once more (key, value and headers as they were), which is
    what a consumer group rewound to offset 0 receives. Returns how many."""
    names = (topics.CHUNK_SUBMITTED, topics.CHUNK_VALIDATED, topics.CHUNK_LOADED)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in consumer.partitions_for_topic(name) or ()
        ]
        ends = await log_ends(consumer, partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for tp, rs in batch.items() for r in rs if r.offset < ends[tp]]
        for r in records:
            await producer.send_and_wait(
                r.topic, r.value, key=r.key, headers=[(k, bytes(v)) for k, v in r.headers]
            )
        return len(records)
    finally:
        await producer.stop()
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
    ports = scenario.stack.ports
    counters = {  # what each worker did with the replayed events
        "validator": (
            "tidegate_events_ignored_total",
            'reason="import_finished",service="validator"',
        ),
        "loader": (
            "tidegate_events_consumed_total",
            f'outcome="applied",service="loader",topic="{topics.CHUNK_VALIDATED}"',
        ),
        "auditor": (
            "tidegate_events_consumed_total",
            f'outcome="applied",service="auditor",topic="{topics.CHUNK_LOADED}"',
        ),
    }
    start = {name: _metric(ports[name], *counter) for name, counter in counters.items()}
    replayed = await _replay_everything(scenario.stack.bootstrap)
    assert replayed >= 3 * CHUNKS
    for _ in range(600):
        seen = {name: _metric(ports[name], *c) - start[name] for name, c in counters.items()}
        if all(count >= CHUNKS for count in seen.values()):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"replay not consumed: {seen}")
    assert await scenario.db.fetchrow(snapshot, import_id) == before
    await scenario.assert_true_final_state(str(import_id))
