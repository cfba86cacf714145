"""Publishing events: `EventPublisher` sends a handler's events (CloudEvents headers,
msgpack bodies) without waiting; the caller awaits the acknowledgements it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer

from shared import events
from shared.kafka.calls import (
    BROKER_CALL_SECONDS,
    MAX_MESSAGE_BYTES,
    until_broker_answers,
    within,
)
from shared.kafka.records import Outgoing, RawRecord, cloudevent_headers
from shared.metrics import EVENT_BYTES_PUBLISHED

log = structlog.get_logger(__name__)


class EventPublisher:
    """Publishes events with CloudEvents headers; `source` names the emitting service."""

    def __init__(self, producer: AIOKafkaProducer, source: str) -> None:
        self._producer = producer
        self.source = source
        self._service = source.rsplit("/", maxsplit=1)[-1]

    async def send(self, items: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
        """Send events; the returned futures complete when the broker acknowledges them."""
        return await self.send_records(
            [
                (
                    topic,
                    events.encode(event),
                    key.encode(),
                    cloudevent_headers(
                        events.event_id(event), events.event_type(event), self.source
                    ),
                )
                for topic, event, key in items
            ]
        )

    async def send_stored(self, rows: Sequence[Mapping[str, Any]]) -> list[asyncio.Future[Any]]:
        """Send events as the outbox stores them (topic, key, event_id, event_type,
        payload, created_at); futures complete on acknowledgement."""
        return await self.send_records(
            [
                (
                    row["topic"],
                    row["payload"],
                    row["key"].encode(),
                    cloudevent_headers(
                        row["event_id"], row["event_type"], self.source, row["created_at"]
                    ),
                )
                for row in rows
            ]
        )

    async def broker_metadata(self) -> None:
        """Ask the broker for its metadata; raises if it does not answer."""
        await self._producer.client.fetch_all_metadata()

    async def send_records(self, records: Sequence[RawRecord]) -> list[asyncio.Future[Any]]:
        """Send already-encoded records; futures complete on acknowledgement."""
        for topic, value, _, _ in records:
            EVENT_BYTES_PUBLISHED.labels(self._service, topic).inc(len(value))
        return await within(self._enqueue(records), BROKER_CALL_SECONDS, "queueing events")

    async def _enqueue(self, records: Sequence[RawRecord]) -> list[asyncio.Future[Any]]:
        """Hand every record to the producer without giving the event loop a turn between
        them (a `send` suspends only for metadata or a full buffer), so they leave in one
        request as soon as the loop turns."""
        return [
            await self._producer.send(topic, value, key=key, headers=headers)
            for topic, value, key, headers in records
        ]


@asynccontextmanager
async def open_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """The embedded broker has no InitProducerId, so idempotence stays off; consumers dedupe."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        max_request_size=MAX_MESSAGE_BYTES,
        # Sent at the loop's next turn: a service that sends a batch's first part and then
        # checks the next part (CPU, seconds-long for big runs) must not hold that part back
        # for a linger timer that cannot fire meanwhile (measured: the loader started on a
        # 10,000-row file's first verdicts 33 ms after they were recorded with 2 ms, 11 ms
        # with 0). Records handed over together still go in one request (`_enqueue`).
        linger_ms=0,
        # Chunks are text: zstd (level 3; aiokafka's lz4 is the slow HC level) shrinks what
        # the broker holds and carries 3.5-fold for about 0.5 ms a 1,000-row chunk (the
        # broker keeps every record in memory in the dev stack).
        compression_type="zstd",
        request_timeout_ms=int(BROKER_CALL_SECONDS * 1000),
    )
    await until_broker_answers(producer.start, "producer")
    try:
        yield producer
    finally:
        await producer.stop()
