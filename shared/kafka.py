"""Kafka helpers: CloudEvents headers, the producer, topic creation, and the consumer loop.

Delivery is at-least-once. A handler applies an event's effect and returns the events it
causes; the loop sends those without waiting, and commits a batch's offsets only after every
effect is committed and every outgoing event acknowledged. It retries transient failures
(shared/failures.py) without moving on, for a bounded time, and sends what cannot be decoded
(or cannot ever be applied) to the dead-letter topic with context headers. Every broker call
has a timeout; a consumer that loses the broker is rebuilt, topics first.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import murmur2

from shared import events, topics
from shared.errors import InvalidEvent
from shared.failures import is_transient
from shared.metrics import (
    CONSUMER_LAG,
    CONSUMER_RECONNECTS,
    EVENT_BYTES_PUBLISHED,
    EVENT_SECONDS,
    EVENTS_CONSUMED,
    PARTITION_LAG,
)

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SPEC_VERSION = b"1.0"
# How long one broker call may take; past it the call fails as transient (a consumer is
# then rebuilt, the relay tries again).
FETCH_WAIT_MS = 50  # an empty fetch returns after this: events move on within it
BROKER_CALL_SECONDS = 15.0
# A member with records waiting for it that fetches none for this long, while it is not
# applying any, is wedged (seen once after a 15 s SIGSTOP): it builds a new consumer.
WEDGED_SECONDS = 30.0


def wedged(*, lag: int, busy: bool, idle_seconds: float) -> bool:
    """Records wait for this member, it applies none, and has applied none for too long."""
    return lag > 0 and not busy and idle_seconds > WEDGED_SECONDS

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


T = TypeVar("T")
_ABANDONED: set[asyncio.Future[Any]] = set()  # kept referenced until they end


async def within(aw: Awaitable[T], seconds: float, what: str) -> T:
    """`aw`'s result if it comes within `seconds`; else it is cancelled and left behind and
    TimeoutError raised. Unlike `asyncio.wait_for`, this never waits for the cancellation
    itself: a Kafka client call that swallows it cannot hold the caller forever."""
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)
    raise TimeoutError(f"{what}: no answer in {seconds:.0f} s")


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


_CREATING_TOPICS = asyncio.Lock()  # one CreateTopics at a time per process


async def ensure_topics(bootstrap: str, partitions: int) -> None:
    """Create tidegate's topics with the intended partition counts if they do not exist.
    The consumer loops of a service reconnect together after a broker loss: they ask one
    after the other rather than race the same CreateTopics (a suspect in a reconnect that
    never finished in the fault suite)."""
    async with _CREATING_TOPICS:
        await _create_missing_topics(bootstrap, partitions)


async def _create_missing_topics(bootstrap: str, partitions: int) -> None:
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
        return [
            await asyncio.wait_for(
                self._producer.send(topic, value, key=key, headers=headers), BROKER_CALL_SECONDS
            )
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
        # Chunks are text: zstd (level 3; aiokafka's lz4 is the slow HC level) shrinks what
        # the broker holds and carries 3.5-fold for about 0.5 ms a 1,000-row chunk (the
        # broker keeps every record in memory in the dev stack).
        compression_type="zstd",
        request_timeout_ms=int(BROKER_CALL_SECONDS * 1000),
    )
    await _until_broker_answers(producer.start, "producer")
    try:
        yield producer
    finally:
        await producer.stop()


async def partition_offsets(
    bootstrap: str, groups: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Seen from the broker, per consumer group, topic and partition: (the offset the group
    has consumed to, the partition's end), whether or not a member is alive to report it.
    Each group's committed offsets are read by a consumer of that group that never
    subscribes (so it never joins the group or moves its partitions)."""
    found: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for group, names in groups.items():
        probe = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await asyncio.wait_for(probe.start(), BROKER_CALL_SECONDS)
        try:
            await asyncio.wait_for(probe.topics(), BROKER_CALL_SECONDS)
            parts = [
                TopicPartition(t, p) for t in names for p in probe.partitions_for_topic(t) or ()
            ]
            ends = await log_ends(probe, parts)
            starts = await asyncio.wait_for(probe.beginning_offsets(parts), BROKER_CALL_SECONDS)
            found[group] = {t: [(0, 0)] * len(probe.partitions_for_topic(t) or ()) for t in names}
            for tp in parts:
                done = await asyncio.wait_for(probe.committed(tp), BROKER_CALL_SECONDS)
                position = done if done is not None and done >= 0 else starts[tp]
                found[group][tp.topic][tp.partition] = (position, ends[tp])
        finally:
            await asyncio.wait_for(probe.stop(), BROKER_CALL_SECONDS)
    return found


async def log_ends(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The end of each partition's log. The embedded broker (tansu 0.5) answers ListOffsets
    with its last record batch's base offset + 1, short of the end when that batch holds
    several records (measured: 18 records in batches of 10 and 8, reported end 11); the high
    watermark in a fetch response is right. So the reported ends are checked by fetching
    from them (`consumer` is left assigned to `parts`)."""
    reported = await asyncio.wait_for(consumer.end_offsets(parts), BROKER_CALL_SECONDS)
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, reported[tp])
    deadline = time.monotonic() + BROKER_CALL_SECONDS
    while any(consumer.highwater(tp) is None for tp in parts) and time.monotonic() < deadline:
        await consumer.getmany(*parts, timeout_ms=100)
    return {tp: max(reported[tp], consumer.highwater(tp) or 0) for tp in parts}


async def group_lag(
    bootstrap: str, groups: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, int]]:
    """Per consumer group and topic: records not yet consumed (`partition_offsets`)."""
    return {
        group: {
            topic: sum(max(end - done, 0) for done, end in parts)
            for topic, parts in topics_.items()
        }
        for group, topics_ in (await partition_offsets(bootstrap, groups)).items()
    }


def partition_of(key: str, partitions: int) -> int:
    """The partition a keyed record goes to (the Java client's and aiokafka's default:
    murmur2 of the key), for a topic of `partitions` partitions."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


class Delivery(msgspec.Struct, frozen=True):
    """Where an event came from, for logs and dead-letter context; `source` is the
    producer's CloudEvents `ce_source` (the identity an upstream producer registers with)."""

    topic: str
    partition: int
    offset: int
    source: str | None = None


E = TypeVar("E", bound=msgspec.Struct)
Decode = Callable[[bytes, str], E]


class ConsumerLoop(Generic[E]):
    """Consumes `topics` in consumer group `group` and applies `handler` to each event,
    as decoded by `decode` (the shared schemas, or a consumer's narrower view of them).

    The broker may vanish and come back empty (tansu keeps nothing): the loop then
    re-creates the topics and a new consumer, and redelivered events are applied again
    idempotently. A transient failure is retried with backoff for `retry_seconds`, then
    the event is dead-lettered (the auditor's reconciler re-drives the import from
    PostgreSQL). Stop with `stop()`: the event in hand is finished and committed first.

    The member must poll within `max_poll_interval_ms` or the group gives its partitions
    to another (which then does the same work and races its key claims). So a batch ends
    after any event that needed retrying (the rest is fetched again), and the interval is
    the retry window plus `poll_margin_seconds` for the rest of the batch.
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
        partitions: int = 6,
        retry_seconds: float = 300.0,
        poll_margin_seconds: float = 120.0,
        on_dead_letter: Callable[[uuid.UUID, str], Awaitable[None]] | None = None,
    ) -> None:
        self.service = service
        self._on_dead_letter = on_dead_letter
        self._bootstrap = bootstrap
        self.group = group
        self._topics = tuple(topics)
        self._handler = handler
        self._decode_payload = decode
        self._publisher = publisher
        self._max_records = max_records
        self._partitions = partitions
        self._retry_seconds = retry_seconds
        self._max_poll_interval_ms = int((retry_seconds + poll_margin_seconds) * 1000)
        self._stopping = asyncio.Event()
        self.running = False  # joined the group and consuming
        self.lag = 0  # records on the broker this member owns but has not applied
        self._busy = False  # applying a batch
        self._progressed_at = time.monotonic()  # last applied batch, or last time idle
        self._measured_at = 0.0

    def stop(self) -> None:
        self._stopping.set()

    def stalled_for(self) -> float:
        """Seconds this loop has had work in hand or waiting without finishing any (0 when
        idle): a batch retrying a transient failure counts, whatever the lag says."""
        if self.lag == 0 and not self._busy:
            return 0.0
        return time.monotonic() - self._progressed_at

    async def run(self) -> None:
        """Consume until stopped, rebuilding the consumer whenever the broker is lost."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self._consume()
                delay = 0.5
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("consumer lost the broker; reconnecting", error=repr(exc))
                CONSUMER_RECONNECTS.labels(self.service).inc()
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, 5.0)

    async def _consume(self) -> None:
        await within(
            ensure_topics(self._bootstrap, self._partitions),
            BROKER_CALL_SECONDS * 4,
            "creating the topics",
        )
        consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
            # A member that died is noticed within 4 s, so its successor is not kept
            # waiting long (aiokafka's default is 10 s); a clean stop leaves the group.
            session_timeout_ms=4000,
            max_poll_interval_ms=self._max_poll_interval_ms,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            heartbeat_interval_ms=1000,
            request_timeout_ms=int(BROKER_CALL_SECONDS * 1000),
        )
        try:
            await within(
                _until_broker_answers(consumer.start, f"consumer {self.group}"),
                BROKER_CALL_SECONDS * 5,
                f"starting consumer {self.group}",
            )
        except BaseException:
            await self._stop(consumer)  # a half-started client keeps background tasks
            raise
        self.running = True
        self._progressed_at = time.monotonic()
        try:
            while not self._stopping.is_set():
                batch = await within(
                    consumer.getmany(timeout_ms=200, max_records=self._max_records),
                    BROKER_CALL_SECONDS,
                    "fetching",
                )
                idle = time.monotonic() - self._progressed_at
                if not batch and wedged(lag=self.lag, busy=self._busy, idle_seconds=idle):
                    raise TimeoutError(
                        f"{self.lag} records wait and none was fetched for {idle:.0f} s"
                    )
                await self._apply_batch(consumer, batch)
                await within(self._measure_lag(consumer), BROKER_CALL_SECONDS, "measuring lag")
        finally:
            self.running = False
            await self._stop(consumer)

    @staticmethod
    async def _stop(consumer: AIOKafkaConsumer) -> None:
        try:
            await within(consumer.stop(), BROKER_CALL_SECONDS, "stopping the consumer")
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("consumer did not stop cleanly", error=repr(exc))

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Records between this member's positions and the partitions' ends, once a second."""
        now = time.monotonic()
        if now - self._measured_at < 1.0:
            return
        self._measured_at = now
        lag = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is not None:
                position = await consumer.position(tp)
                if position > end and position > (await consumer.end_offsets([tp]))[tp]:
                    # The broker lost the log (a restart of a memory-only broker, or an
                    # unclean election) and started it again below this member: what it
                    # holds now was published since, and is read from its start.
                    log.warning(
                        "partition behind this consumer: reading it from its start",
                        topic=tp.topic,
                        partition=tp.partition,
                        position=position,
                        end=end,
                    )
                    await consumer.seek_to_beginning(tp)
                    continue
                behind = end - position
                PARTITION_LAG.labels(self.service, self.group, tp.topic, str(tp.partition)).set(
                    behind
                )
                lag += behind
        self.lag = lag
        if lag == 0:
            self._progressed_at = now
        CONSUMER_LAG.labels(self.service, self.group).set(lag)

    async def _apply_batch(
        self,
        consumer: AIOKafkaConsumer,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        pending = [(tp, record) for tp, records in batch.items() for record in records]
        if not pending:
            return
        self._busy = True
        try:
            await self._apply_records(consumer, pending)
        finally:
            self._busy = False

    async def _apply_records(
        self,
        consumer: AIOKafkaConsumer,
        pending: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes]]],
    ) -> None:
        done: dict[TopicPartition, int] = {}
        acks: list[asyncio.Future[Any]] = []
        for index, (tp, record) in enumerate(pending):
            if self._stopping.is_set() and done:
                break  # stopping: commit the work done, leave the rest to the next owner
            applied = await self._process(record)
            if applied is None:
                break  # stopping while retrying: leave the rest uncommitted
            outgoing, retried = applied
            acks += await self._publisher.send(outgoing)
            done[tp] = record.offset + 1
            if retried:  # poll again before the rest, which is fetched again
                self._rewind(consumer, pending[index + 1 :])
                break
        if not done:
            return
        # Effects are committed; if their events are not acknowledged, this raises and the
        # consumer is rebuilt: the batch is delivered again and every effect re-announces
        # its outcome without applying twice.
        await asyncio.wait_for(asyncio.gather(*acks), BROKER_CALL_SECONDS)
        self._progressed_at = time.monotonic()
        try:
            await within(consumer.commit(done), BROKER_CALL_SECONDS, "committing offsets")
        except CommitFailedError as exc:
            # A rebalance moved the partitions: their new owner gets these records again,
            # and applying them twice changes nothing.
            log.warning("offsets not committed; the records will be redelivered", error=str(exc))

    @staticmethod
    def _rewind(
        consumer: AIOKafkaConsumer,
        rest: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes]]],
    ) -> None:
        """Fetch `rest` again: each partition back to its first record not applied."""
        first: dict[TopicPartition, int] = {}
        for tp, record in rest:
            first.setdefault(tp, record.offset)
        for tp, offset in first.items():
            consumer.seek(tp, offset)

    async def _process(
        self, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[Sequence[Outgoing], bool] | None:
        """Apply one record; (the events it causes, whether it needed retrying). None only
        if we were asked to stop before it was applied."""
        delivery = Delivery(
            record.topic, record.partition, record.offset, header(record, "ce_source")
        )
        started = time.perf_counter()
        try:
            event = self._decode(record)
        except InvalidEvent as exc:
            await self._give_up(record, str(exc), None)
            return (), False
        delay = 0.2
        retried = False
        give_up_at = time.monotonic() + self._retry_seconds
        with structlog.contextvars.bound_contextvars(
            import_id=str(getattr(event, "import_id", "")),
            topic=record.topic,
            offset=record.offset,
        ):
            while True:
                try:
                    outgoing = await self._handler(event, delivery)
                    break
                except Exception as exc:
                    if not is_transient(exc):
                        log.exception("event cannot be applied")
                        await self._give_up(record, f"{type(exc).__name__}: {exc}", event)
                        return (), retried
                    if time.monotonic() > give_up_at:
                        reason = f"still failing after {self._retry_seconds:.0f} s: {exc!r}"
                        await self._give_up(record, reason, event)
                        return (), True
                    retried = True
                    log.warning("transient failure; retrying", error=repr(exc), retry_in=delay)
                    EVENTS_CONSUMED.labels(self.service, record.topic, "retried").inc()
                    try:
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    except TimeoutError:
                        delay = min(delay * 2, 5.0)
                        continue
                    return None
        EVENTS_CONSUMED.labels(self.service, record.topic, "applied").inc()
        EVENT_SECONDS.labels(self.service, record.topic).observe(time.perf_counter() - started)
        return outgoing, retried

    async def _give_up(
        self, record: ConsumerRecord[bytes, bytes], reason: str, event: E | None
    ) -> None:
        await self._dead_letter(record, reason)
        EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
        import_id = getattr(event, "import_id", None)
        if self._on_dead_letter is not None and isinstance(import_id, uuid.UUID):
            try:  # the import's journal is information: never fail the delivery for it
                await self._on_dead_letter(import_id, f"{record.topic}: {reason[:500]}")
            except Exception as exc:  # noqa: BLE001
                log.warning("dead letter not journalled", error=repr(exc))

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
            ("tg_consumer_group", self.group.encode()),
        ]
        log.error("dead-lettered", reason=reason[:500])
        record_to_dlq = (topics.DEAD_LETTER, record.value or b"", record.key, headers)
        acks = await self._publisher.send_records([record_to_dlq])
        await asyncio.wait_for(asyncio.gather(*acks), BROKER_CALL_SECONDS)
