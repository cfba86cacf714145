"""The consumer loop on the real broker: a batch that keeps failing transiently shows as
stalled (so /readyz is not a lie), is abandoned cleanly on stop, and a record is given up
(dead-lettered) once the retry time is spent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared import events
from shared.errors import TransientError
from shared.kafka.admin import log_ends
from shared.kafka.consumer import BatchHandler, ConsumerLoop
from shared.kafka.producer import EventPublisher
from shared.kafka.records import Delivery, Outgoing
from shared.service import PUBLISHER
from tests.conftest import Running


async def _produce_one(bootstrap: str, topic: str) -> None:
    event = events.ChunkLoaded(import_id=uuid.uuid4(), seq=0, loaded_rows=1, failed_rows=0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, events.encode(event), key=b"k")
    finally:
        await producer.stop()


def _loop(
    bootstrap: str, topic: str, publisher: EventPublisher, retry: float
) -> tuple[ConsumerLoop[events.Event], list[int]]:
    attempts: list[int] = []

    async def always_down(_: events.Event, __: Delivery) -> Sequence[Outgoing]:
        attempts.append(1)
        raise TransientError("the database is away")

    loop = ConsumerLoop(
        service="test",
        bootstrap=bootstrap,
        group=f"test-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=always_down,
        decode=events.decode,
        publisher=publisher,
        retry_seconds=retry,
    )
    return loop, attempts


async def test_a_batch_retrying_a_transient_failure_is_stalled(
    bootstrap: str, services: Running
) -> None:
    topic = f"test.stall.{uuid.uuid4().hex[:8]}"
    await _produce_one(bootstrap, topic)
    loop, attempts = _loop(bootstrap, topic, services.apps["loader"][PUBLISHER], retry=300)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(300):
            if len(attempts) >= 3:
                break
            await asyncio.sleep(0.1)
        assert len(attempts) >= 3  # retried, not dropped
        await asyncio.sleep(1)
        assert loop.stalled_for() > 1  # work in hand, nothing finished
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)
    assert not loop.running


async def test_a_record_is_given_up_after_the_retry_time(bootstrap: str, services: Running) -> None:
    topic = f"test.giveup.{uuid.uuid4().hex[:8]}"
    await _produce_one(bootstrap, topic)
    loop, attempts = _loop(bootstrap, topic, services.apps["loader"][PUBLISHER], retry=1)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(300):  # given up (dead-lettered) and committed: the loop is idle
            if attempts and loop.running and loop.stalled_for() == 0 and loop.lag == 0:
                break
            await asyncio.sleep(0.1)
        count = len(attempts)
        await asyncio.sleep(1.5)
        assert len(attempts) == count  # no longer retried
        assert loop.stalled_for() == 0
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)


async def test_a_member_retrying_one_event_after_another_keeps_its_partitions(
    bootstrap: str, services: Running
) -> None:
    """Five events in one batch each fail transiently for about a second. The member may
    go 2.5 s without polling (retry window 1.5 s + margin 1 s): it polls after each retried
    event instead of holding the batch for 7 s, so it is never taken out of the group and
    each event is applied exactly once (a member still retrying lost its partitions to a
    second member, which did the work again)."""
    topic = f"test.poll.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for seq in range(5):
            event = events.ChunkLoaded(
                import_id=uuid.uuid4(), seq=seq, loaded_rows=1, failed_rows=0
            )
            await producer.send_and_wait(topic, events.encode(event), key=b"one partition")
    finally:
        await producer.stop()
    first_try: dict[int, float] = {}
    applied: list[int] = []

    async def slowly_back(event: events.Event, _: Delivery) -> Sequence[Outgoing]:
        assert isinstance(event, events.ChunkLoaded)
        started = first_try.setdefault(event.seq, asyncio.get_running_loop().time())
        if asyncio.get_running_loop().time() - started < 1.0:
            raise TransientError("the database is away for a second")
        applied.append(event.seq)
        return ()

    group = f"test-{uuid.uuid4().hex[:8]}"
    loops = [
        ConsumerLoop(
            service="test",
            bootstrap=bootstrap,
            group=group,
            topics=[topic],
            handler=slowly_back,
            decode=events.decode,
            publisher=services.apps["loader"][PUBLISHER],
            retry_seconds=1.5,
            poll_margin_seconds=1.0,
        )
        for _ in range(2)  # a second member, ready to take the partition
    ]
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        for _ in range(300):
            if len(applied) >= 5:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # anything redelivered would be applied again by now
    finally:
        for loop in loops:
            loop.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert sorted(applied) == [0, 1, 2, 3, 4]


async def test_log_ends_are_the_true_ends_of_batched_partitions(bootstrap: str) -> None:
    """Small events are produced in batches of several records; the embedded broker then
    reports a partition's end short of it (ListOffsets), which would make the reconciler
    take waiting events for lost ones. `log_ends` is right."""
    topic = f"ends-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for size in (1, 10, 8):
            sent = [await producer.send(topic, b"x" * 60, partition=0) for _ in range(size)]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await log_ends(consumer, parts)
    finally:
        await consumer.stop()
    assert ends[TopicPartition(topic, 0)] == 19
    assert all(end == 0 for tp, end in ends.items() if tp.partition != 0)


async def _produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    """`values` on one partition, sent together (so they are fetched as one batch)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=b"one partition") for value in values]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _noting(
    seen: list[int],
) -> Callable[[events.Event, Delivery], Awaitable[Sequence[Outgoing]]]:
    """An event handler that notes the seq of each chunk.loaded it applies."""

    async def each(event: events.Event, _: Delivery) -> Sequence[Outgoing]:
        assert isinstance(event, events.ChunkLoaded)
        seen.append(event.seq)
        return ()

    return each


def _loaded(seq: int) -> bytes:
    return events.encode(
        events.ChunkLoaded(import_id=uuid.UUID(int=7), seq=seq, loaded_rows=1, failed_rows=0)
    )


async def _consume(
    bootstrap: str,
    services: Running,
    topic: str,
    each: Callable[[events.Event, Delivery], Awaitable[Sequence[Outgoing]]],
    together: BatchHandler[events.Event],
    done: Callable[[], bool],
    group: str | None = None,
) -> ConsumerLoop[events.Event]:
    """Consume `topic` with these handlers until `done()` and nothing is left, then a
    second more (anything redelivered would be applied again by then)."""
    loop = ConsumerLoop(
        service="test",
        bootstrap=bootstrap,
        group=group or f"test-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=each,
        batch_handler=together,
        decode=events.decode,
        publisher=services.apps["loader"][PUBLISHER],
    )
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(300):
            if done() and loop.running and loop.lag == 0 and loop.stalled_for() == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)
    return loop


async def test_a_batch_handler_applies_a_fetched_batch_at_once(
    bootstrap: str, services: Running
) -> None:
    topic = f"test.batch.{uuid.uuid4().hex[:8]}"
    await _produce(bootstrap, topic, [_loaded(seq) for seq in range(5)])
    batches: list[list[int]] = []
    one_by_one: list[int] = []

    each = _noting(one_by_one)

    async def together(
        items: Sequence[tuple[events.Event, Delivery]],
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        batches.append([e.seq for e, _ in items if isinstance(e, events.ChunkLoaded)])
        yield ()

    def all_seen() -> bool:
        return sum(map(len, batches)) + len(one_by_one) >= 5

    await _consume(bootstrap, services, topic, each, together, all_seen)
    seen = [seq for batch in batches for seq in batch] + one_by_one
    assert sorted(seen) == [0, 1, 2, 3, 4]  # each once, committed
    assert any(len(batch) > 1 for batch in batches)  # several at once


async def test_a_batch_that_fails_is_applied_event_by_event(
    bootstrap: str, services: Running
) -> None:
    """The batch handler raises, and one record cannot be decoded: every good event is
    applied by the event handler once, and the bad record is dead-lettered, not retried."""
    topic = f"test.batchfail.{uuid.uuid4().hex[:8]}"
    await _produce(bootstrap, topic, [_loaded(0), _loaded(1), b"not msgpack", _loaded(2)])
    tried: list[int] = []
    applied: list[int] = []

    each = _noting(applied)

    async def fails(
        items: Sequence[tuple[events.Event, Delivery]],
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        tried.append(len(items))
        yield ()  # a part applied and sent, then the bug
        raise RuntimeError("a bug in the batch handler")

    await _consume(bootstrap, services, topic, each, fails, lambda: len(applied) >= 3)
    assert applied == [0, 1, 2]
    assert tried == []  # a batch holding an undecodable record goes event by event

    topic = f"test.batchfail.{uuid.uuid4().hex[:8]}"
    await _produce(bootstrap, topic, [_loaded(3), _loaded(4)])
    await _consume(bootstrap, services, topic, each, fails, lambda: len(applied) >= 5)
    assert applied == [0, 1, 2, 3, 4]
    assert tried and max(tried) == 2  # tried at once, then event by event


async def test_a_member_past_the_end_of_a_log_the_broker_lost_reads_the_new_log(
    bootstrap: str, services: Running
) -> None:
    """The group committed offset 50 in the log's first life; the broker lost the log and
    began it again (3 records). The broker answers a fetch at 50 with nothing and no error:
    the member reads the new log from its start, and ends with no lag and no stall (-47
    records waiting would keep /readyz at 503 for good)."""
    topic = f"test.lostlog.{uuid.uuid4().hex[:8]}"
    group = f"test-{uuid.uuid4().hex[:8]}"
    await _produce(bootstrap, topic, [_loaded(seq) for seq in range(3)])
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await committer.start()
    try:
        await committer.topics()
        parts = [TopicPartition(topic, p) for p in committer.partitions_for_topic(topic) or ()]
        committer.assign(parts)
        await committer.commit({tp: OffsetAndMetadata(50, "") for tp in parts})
    finally:
        await committer.stop()
    applied: list[int] = []

    each = _noting(applied)

    async def together(
        items: Sequence[tuple[events.Event, Delivery]],
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        for event, delivery in items:
            await each(event, delivery)
        yield ()

    loop = await _consume(
        bootstrap, services, topic, each, together, lambda: len(applied) >= 3, group
    )
    assert sorted(applied) == [0, 1, 2]
    assert (loop.lag, loop.stalled_for()) == (0, 0.0)
