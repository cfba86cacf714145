"""Topics and offsets as the broker holds them: creating tidegate's topics, where each
consumer group has got to, the true end of each partition, and which partition a key
goes to."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from shared import topics
from shared.kafka.calls import BROKER_CALL_SECONDS, until_broker_answers, within

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
    await until_broker_answers(admin.start, "admin")
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
        await within(probe.start(), BROKER_CALL_SECONDS, "starting an offset probe")
        try:
            await within(probe.topics(), BROKER_CALL_SECONDS, "listing topics")
            parts = [
                TopicPartition(t, p) for t in names for p in probe.partitions_for_topic(t) or ()
            ]
            ends = await log_ends(probe, parts)
            starts = await within(
                probe.beginning_offsets(parts), BROKER_CALL_SECONDS, "reading log starts"
            )
            found[group] = {t: [(0, 0)] * len(probe.partitions_for_topic(t) or ()) for t in names}
            for tp in parts:
                done = await within(probe.committed(tp), BROKER_CALL_SECONDS, "reading offsets")
                position = done if done is not None and done >= 0 else starts[tp]
                found[group][tp.topic][tp.partition] = (position, ends[tp])
        finally:
            await within(probe.stop(), BROKER_CALL_SECONDS, "stopping an offset probe")
    return found


async def log_ends(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The end of each partition's log. The embedded broker (tansu 0.5) answers ListOffsets
    with its last record batch's base offset + 1, short of the end when that batch holds
    several records (measured: 18 records in batches of 10 and 8, reported end 11); the high
    watermark in a fetch response is right. So the reported ends are checked by fetching
    from them (`consumer` is left assigned to `parts`)."""
    reported = await within(consumer.end_offsets(parts), BROKER_CALL_SECONDS, "reading log ends")
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
