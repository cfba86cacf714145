"""The consumer loop: the one place of the delivery contract.

Delivery is at-least-once. A handler applies an event's effect and returns the events it
causes (a batch handler, a whole fetched batch's); the loop sends those without waiting,
and commits a batch's offsets only after every effect is committed and every outgoing
event acknowledged. It retries transient failures (shared/failures.py) without moving on,
for a bounded time, and sends what cannot be decoded (or cannot ever be applied) to the
dead-letter topic with context headers. Every broker call has a timeout; a consumer that
loses the broker (or is wedged) is rebuilt, topics first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from shared import events, topics
from shared.errors import InvalidEvent
from shared.failures import is_transient
from shared.kafka.admin import ensure_topics
from shared.kafka.calls import (
    BROKER_CALL_SECONDS,
    FETCH_WAIT_MS,
    MAX_MESSAGE_BYTES,
    until_broker_answers,
    within,
)
from shared.kafka.producer import EventPublisher
from shared.kafka.records import Delivery, Headers, Outgoing, header
from shared.metrics import (
    CONSUMER_LAG,
    CONSUMER_RECONNECTS,
    EVENT_SECONDS,
    EVENTS_CONSUMED,
    PARTITION_LAG,
)

log = structlog.get_logger(__name__)

# A member with records waiting for it that fetches none for this long, while it is not
# applying any, is wedged (seen once after a 15 s SIGSTOP): it builds a new consumer.
WEDGED_SECONDS = 30.0


def wedged(*, lag: int, busy: bool, idle_seconds: float) -> bool:
    """Records wait for this member, it applies none, and has applied none for too long."""
    return lag > 0 and not busy and idle_seconds > WEDGED_SECONDS


def records_behind(position: int, high_watermark: int) -> int | None:
    """Records between a member's position and its partition's end, or None when the
    position is past the end. A fetch never delivers a record above its high watermark, so
    a member stands past the end only when the broker lost the log (a memory-only broker
    restarted, or an unclean election) and began it again below the member, which must
    then read it from its start. The embedded broker answers a fetch past the end with no
    records and no error, and its ListOffsets reports ends short (`admin.log_ends`): only
    the fetch's high watermark can be trusted to tell."""
    return None if position > high_watermark else high_watermark - position


E = TypeVar("E", bound=msgspec.Struct)
Decode = Callable[[bytes, str], E]
# Applies a fetched batch, yielding the events of each part as soon as that part is applied.
BatchHandler = Callable[[Sequence[tuple[E, Delivery]]], AsyncGenerator[Sequence[Outgoing], None]]


class ConsumerLoop(Generic[E]):
    """Consumes `topics` in consumer group `group` and applies `handler` to each event,
    as decoded by `decode` (the shared schemas, or a consumer's narrower view of them).

    The broker may vanish and come back empty (tansu keeps nothing): the loop then
    re-creates the topics and a new consumer, and redelivered events are applied again
    idempotently. A transient failure is retried with backoff for `retry_seconds`, then
    the event is dead-lettered (the auditor's reconciler re-drives the import from
    PostgreSQL). Stop with `stop()`: the event in hand is finished and committed first.

    With a `batch_handler`, a fetched batch of several events is first applied at once
    (fewer transactions and events); the events of each part it yields are sent at once,
    so the next stage starts on them while the rest is applied. If any of the batch cannot
    be decoded, or the handler raises, the batch is applied again event by event with
    `handler`, which retries or dead-letters each as above (so a batch handler's effects,
    like a handler's, must be idempotent, and events already sent are sent again: their
    ids are deterministic).

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
        batch_handler: BatchHandler[E] | None = None,
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
        self._batch_handler = batch_handler
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
                until_broker_answers(consumer.start, f"consumer {self.group}"),
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
            if end is None:
                continue
            position = await consumer.position(tp)
            behind = records_behind(position, end)
            if behind is None:
                log.warning(
                    "partition behind this consumer: reading it from its start",
                    topic=tp.topic,
                    partition=tp.partition,
                    position=position,
                    end=end,
                )
                await consumer.seek_to_beginning(tp)
                continue
            PARTITION_LAG.labels(self.service, self.group, tp.topic, str(tp.partition)).set(behind)
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
        if len(pending) > 1 and await self._apply_together(consumer, pending):
            return
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
        await self._commit(consumer, done, acks)

    async def _apply_together(
        self,
        consumer: AIOKafkaConsumer,
        pending: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes]]],
    ) -> bool:
        """Apply the batch with the batch handler: True when it is applied and committed,
        False when it must be applied event by event (no batch handler, a record that
        cannot be decoded, or a failure: what the handler did is then applied again,
        which changes nothing)."""
        if self._batch_handler is None or self._stopping.is_set():
            return False
        started = time.perf_counter()
        try:
            items = [(self._decode(record), self._delivery(record)) for _, record in pending]
        except InvalidEvent:
            return False
        acks: list[asyncio.Future[Any]] = []
        try:
            async with contextlib.aclosing(self._batch_handler(items)) as parts:
                async for outgoing in parts:
                    acks += await self._publisher.send(outgoing)
        except Exception as exc:  # noqa: BLE001 — each event is applied again on its own
            log.info("batch not applied at once; applying it event by event", error=repr(exc))
            return False
        done = {tp: record.offset + 1 for tp, record in pending}  # offsets rise in a batch
        each = (time.perf_counter() - started) / len(pending)
        for _, record in pending:
            EVENTS_CONSUMED.labels(self.service, record.topic, "applied").inc()
            EVENT_SECONDS.labels(self.service, record.topic).observe(each)
        await self._commit(consumer, done, acks)
        return True

    async def _commit(
        self,
        consumer: AIOKafkaConsumer,
        done: dict[TopicPartition, int],
        acks: list[asyncio.Future[Any]],
    ) -> None:
        """Commit the offsets `done` once the events sent (`acks`) are acknowledged."""
        if not done:
            return
        # Effects are committed; if their events are not acknowledged, this raises and the
        # consumer is rebuilt: the batch is delivered again and every effect re-announces
        # its outcome without applying twice.
        await within(asyncio.gather(*acks), BROKER_CALL_SECONDS, "acknowledging events")
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
        delivery = self._delivery(record)
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

    @staticmethod
    def _delivery(record: ConsumerRecord[bytes, bytes]) -> Delivery:
        return Delivery(record.topic, record.partition, record.offset, header(record, "ce_source"))

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
        await within(asyncio.gather(*acks), BROKER_CALL_SECONDS, "acknowledging events")
