"""The outbox relay with several gateways: every key's (import's) events reach the broker in
the order they were stored, whatever the number of relays and the size of the backlog
(issue 19, item 5)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.gateway.intake.relay import OutboxRelay
from shared.kafka.producer import EventPublisher, open_producer

EVENTS_PER_IMPORT = 400
IMPORTS = 3
RELAYS = 4


async def _backlog(db: asyncpg.Connection, topic: str) -> dict[str, list[int]]:
    """A backlog of three imports' events, interleaved, as a broker outage leaves it."""
    keys = [str(uuid.uuid4()) for _ in range(IMPORTS)]
    stored: dict[str, list[int]] = defaultdict(list)
    records = []
    for seq in range(EVENTS_PER_IMPORT):
        for key in keys:
            records.append((f"{key}:{seq}", "test.ordered", topic, key, str(seq).encode()))
            stored[key].append(seq)
    await db.executemany(
        "INSERT INTO tidegate.outbox (event_id, event_type, topic, key, payload)"
        " VALUES ($1, $2, $3, $4, $5)",
        records,
    )
    return stored


async def _read(bootstrap: str, topic: str, expected: int) -> dict[str, list[int]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: dict[str, list[int]] = defaultdict(list)
    try:
        count = 0
        async with asyncio.timeout(60):
            while count < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        assert record.key is not None and record.value is not None
                        seen[record.key.decode()].append(int(record.value))
                        count += 1
    finally:
        await consumer.stop()
    return seen


async def test_several_relays_publish_each_imports_events_in_order(
    pool: asyncpg.Pool, db: asyncpg.Connection, bootstrap: str
) -> None:
    topic = f"test.relay-order.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    stored = await _backlog(db, topic)
    async with open_producer(bootstrap) as producer:
        publisher = EventPublisher(producer, source="/tidegate/test")
        relays = [OutboxRelay(pool, publisher, poll_seconds=0.05) for _ in range(RELAYS)]
        tasks = [asyncio.create_task(relay.run()) for relay in relays]
        try:
            seen = await _read(bootstrap, topic, IMPORTS * EVENTS_PER_IMPORT)
        finally:
            for relay in relays:
                relay.stop()
            await asyncio.gather(*tasks)
    assert seen.keys() == stored.keys()
    for key, seqs in seen.items():
        assert seqs == stored[key], f"{key}: published out of order"
    left = await db.fetchval(
        "SELECT count(*) FROM tidegate.outbox WHERE topic = $1 AND published_at IS NULL", topic
    )
    assert left == 0
