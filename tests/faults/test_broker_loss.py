"""The broker dies mid-import and comes back empty (tansu keeps nothing in memory; a real
Kafka can lose acknowledged events too). PostgreSQL holds the truth: the consumers rebuild
themselves and the topics, and the reconciler re-drives what the broker lost."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from shared import events, topics
from shared.kafka.records import cloudevent_headers
from tests.faults.conftest import CHUNK_SIZE, CHUNKS, ROWS, SERVICES_ALL, Scenario
from tidegate.sample_data import HEADER, rows


@pytest.mark.parametrize("order", ["broker_only", "broker_then_services", "services_then_broker"])
async def test_broker_killed_mid_import(scenario: Scenario, order: str) -> None:
    import_id = await scenario.upload()
    await scenario.wait_loaded(2_000)
    scenario.kill_broker()
    assert await scenario.rows_loaded() < ROWS
    status, body = await asyncio.to_thread(scenario.readiness, "loader")
    assert (status, body["checks"]["broker"]["ok"]) == (503, False)  # not a 200 lie
    await asyncio.sleep(2)
    if order == "broker_only":  # the services stay up and reconnect by themselves
        scenario.broker.start()
    elif order == "broker_then_services":
        scenario.broker.start()
        for name in SERVICES_ALL:
            scenario.kill(name)
        scenario.restart(*SERVICES_ALL)
    else:
        for name in SERVICES_ALL:
            scenario.kill(name)
        scenario.restart(*SERVICES_ALL)  # they wait for the broker
        await asyncio.sleep(3)
        scenario.broker.start()
    await scenario.assert_true_final_state(import_id)
    await scenario.wait_ready(*SERVICES_ALL)


async def test_broker_down_during_the_upload(scenario: Scenario) -> None:
    scenario.kill_broker()
    import_id = await scenario.upload()  # accepted: the chunks wait in the outbox
    await asyncio.sleep(3)
    assert await scenario.rows_loaded() == 0
    scenario.broker.start()
    await scenario.assert_true_final_state(import_id)


async def test_an_upstream_import_survives_broker_loss(scenario: Scenario) -> None:
    """Chunks produced straight onto the topic: once the validator has seen them, tidegate
    keeps a copy, so what the broker loses afterwards is re-driven too."""
    scenario.kill("loader")  # nothing loads: every chunk.validated is still on the broker
    import_id = uuid.uuid4()
    data = list(rows(ROWS))
    producer = AIOKafkaProducer(bootstrap_servers=scenario.stack.bootstrap)
    await producer.start()
    try:
        for seq in range(CHUNKS):
            event = events.ChunkSubmitted(
                import_id=import_id,
                seq=seq,
                table=scenario.table,
                columns=tuple(HEADER),
                rows=data[seq * CHUNK_SIZE : (seq + 1) * CHUNK_SIZE],
                first_line=2 + seq * CHUNK_SIZE,
                last=seq == CHUNKS - 1,
            )
            await producer.send_and_wait(
                topics.CHUNK_SUBMITTED,
                events.encode(event),
                key=str(import_id).encode(),
                headers=cloudevent_headers(
                    events.event_id(event), events.event_type(event), "/upstream/crm"
                ),
            )
    finally:
        await producer.stop()
    for _ in range(600):
        verdicts = await scenario.db.fetchval(
            "SELECT count(*) FROM tidegate.chunk_verdicts WHERE import_id = $1", import_id
        )
        if verdicts == CHUNKS:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the validator did not validate every chunk")
    scenario.kill_broker()  # every chunk.validated is lost
    scenario.broker.start()
    scenario.restart("loader")
    final = await scenario.assert_true_final_state(str(import_id))
    assert (final["source"], final["producer"]) == ("kafka", "/upstream/crm")
    assert final["redrives"] >= 1  # re-driven from the copies the validator kept
