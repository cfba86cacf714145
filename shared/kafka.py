"""Kafka helpers: CloudEvents headers, the producer, topic creation, and the consumer loop.

Delivery is at-least-once. A handler applies an event's effect and returns the events it
causes; the loop sends those without waiting, and commits a batch's offsets only after every
effect is committed and every outgoing event acknowledged. It retries transient failures
without moving on, and sends what cannot be decoded (or cannot ever be applied) to the
dead-letter topic with context headers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from shared import events, topics
from shared.errors import InvalidEvent, TidegateError
from shared.metrics import EVENT_SECONDS, EVENTS_CONSUMED

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SPEC_VERSION = b"1.0"

Headers = list[tuple[str, bytes]]
RawRecord = tuple[str, bytes, bytes | None, Headers]  # topic, value, key, headers
Outgoing = tuple[str, events.Event, str]  # topic, event, key


def cloudevent_headers(
    event_id: str, event_type: str, source: str, at: datetime | None = None
) -> Headers:
    """CloudEvents binary-mode attributes as Kafka headers."""
    at = at or datetime.now(UTC)
    return [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", at.isoformat().encode()),
        ("content-type", events.MSGPACK.encode()),
    ]


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return None


async def _until_broker_answers(start: Callable[[], Awaitable[None]], what: str) -> None:
    """Start a client, waiting for the broker for up to a minute (it may start after us)."""
    delay = 0.1
    deadline = time.monotonic() + 60
    while True:
        try:
            await start()
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            log.warning("broker not reachable yet", client=what, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            return


async def ensure_topics(bootstrap: str, partitions: int) -> None:
    """Create tidegate's topics with the intended partition counts if they do not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await _until_broker_answers(admin.start, "admin")
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in topics.ALL
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another service created them first
    finally:
        await admin.close()


class EventPublisher:
    """Publishes events with CloudEvents headers; `source` names the emitting service."""

    def __init__(self, producer: AIOKafkaProducer, source: str) -> None:
        self._producer = producer
        self.source = source

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

    async def send_records(self, records: Sequence[RawRecord]) -> list[asyncio.Future[Any]]:
        """Send already-encoded records; futures complete on acknowledgement."""
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
        linger_ms=2,
    )
    await _until_broker_answers(producer.start, "producer")
    try:
        yield producer
    finally:
        await producer.stop()


class Delivery(msgspec.Struct, frozen=True):
    """Where an event came from, for logs and dead-letter context."""

    topic: str
    partition: int
    offset: int


E = TypeVar("E", bound=msgspec.Struct)
Decode = Callable[[bytes, str], E]


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the same event may succeed once the connection or broker is back."""
    if isinstance(exc, TidegateError):
        return exc.retriable
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | KafkaError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.SerializationError
        | asyncpg.exceptions.DeadlockDetectedError
        | asyncpg.exceptions.OperatorInterventionError,
    )


class ConsumerLoop(Generic[E]):
    """Consumes `topics` in consumer group `group` and applies `handler` to each event,
    as decoded by `decode` (the shared schemas, or a consumer's narrower view of them).

    Stop with `stop()`: the event in hand is finished and its offset committed first.
    """

    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        group: str,
        topics: Sequence[str],
        handler: Callable[[E, Delivery], Awaitable[Sequence[Outgoing]]],
        decode: Decode[E],
        publisher: EventPublisher,
        max_records: int = 20,
    ) -> None:
        self.service = service
        self._bootstrap = bootstrap
        self._group = group
        self._topics = tuple(topics)
        self._handler = handler
        self._decode_payload = decode
        self._publisher = publisher
        self._max_records = max_records
        self._stopping = asyncio.Event()
        self.running = False

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
        )
        await _until_broker_answers(consumer.start, f"consumer {self._group}")
        self.running = True
        try:
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
                await self._apply_batch(consumer, batch)
        finally:
            self.running = False
            await consumer.stop()

    async def _apply_batch(
        self,
        consumer: AIOKafkaConsumer,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        done: dict[TopicPartition, int] = {}
        acks: list[asyncio.Future[Any]] = []
        pending = [(tp, record) for tp, records in batch.items() for record in records]
        for tp, record in pending:
            if self._stopping.is_set() and done:
                break  # stopping: commit the work done, leave the rest to the next owner
            applied = await self._process(record)
            if applied is None:
                break  # stopping while retrying: leave the rest uncommitted
            acks += await self._publisher.send(applied)
            done[tp] = record.offset + 1
        if not done:
            return
        try:
            await asyncio.gather(*acks)
        except KafkaError as exc:
            # Effects are committed but their events may be lost: apply the batch again
            # (every effect is idempotent, and a repeat re-announces its outcome).
            log.warning("outgoing events not acknowledged; re-applying batch", error=str(exc))
            for tp, records in batch.items():
                consumer.seek(tp, records[0].offset)
            return
        try:
            await consumer.commit(done)
        except KafkaError as exc:
            # Typically a rebalance moved the partitions: their new owner gets these records
            # again, and applying them twice changes nothing.
            log.warning("offsets not committed; the records will be redelivered", error=str(exc))

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> Sequence[Outgoing] | None:
        """Apply one record and return the events it causes; None only if we were asked
        to stop before it was applied."""
        delivery = Delivery(record.topic, record.partition, record.offset)
        started = time.perf_counter()
        try:
            event = self._decode(record)
        except InvalidEvent as exc:
            await self._dead_letter(record, str(exc))
            EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
            return ()
        delay = 0.2
        with structlog.contextvars.bound_contextvars(
            import_id=str(getattr(event, "import_id", "")),
            topic=record.topic,
            offset=record.offset,
        ):
            while True:
                try:
                    outgoing = await self._handler(event, delivery)
                except Exception as exc:
                    if not is_transient(exc):
                        log.exception("event cannot be applied; dead-lettered")
                        await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                        EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
                        return ()
                    log.warning("transient failure; retrying", error=str(exc), retry_in=delay)
                    EVENTS_CONSUMED.labels(self.service, record.topic, "retried").inc()
                    try:
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    except TimeoutError:
                        delay = min(delay * 2, 10.0)
                        continue
                    return None
                else:
                    break
        EVENTS_CONSUMED.labels(self.service, record.topic, "applied").inc()
        EVENT_SECONDS.labels(self.service, record.topic).observe(time.perf_counter() - started)
        return outgoing

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> E:
        if record.value is None:
            raise InvalidEvent("empty record value")
        content_type = header(record, "content-type") or events.MSGPACK
        try:
            event = self._decode_payload(record.value, content_type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidEvent(f"undecodable event: {exc}") from exc
        declared = header(record, "ce_type")
        if declared is not None and declared != events.event_type(event):
            raise InvalidEvent(f"ce_type {declared!r} does not match payload type")
        return event

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        headers: Headers = [(k, bytes(v)) for k, v in record.headers or ()]
        headers += [
            ("tg_error", reason[:2000].encode()),
            ("tg_source_topic", record.topic.encode()),
            ("tg_source_partition", str(record.partition).encode()),
            ("tg_source_offset", str(record.offset).encode()),
            ("tg_consumer_group", self._group.encode()),
        ]
        log.error("dead-lettered", reason=reason[:500])
        record_to_dlq = (topics.DEAD_LETTER, record.value or b"", record.key, headers)
        await asyncio.gather(*await self._publisher.send_records([record_to_dlq]))
