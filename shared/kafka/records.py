"""What travels: CloudEvents binary-mode headers on every record, an event to send
(`Outgoing`) and where a received one came from (`Delivery`)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from aiokafka import ConsumerRecord

from shared import events

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


class Delivery(msgspec.Struct, frozen=True):
    """Where an event came from, for logs and dead-letter context; `source` is the
    producer's CloudEvents `ce_source` (the identity an upstream producer registers with)."""

    topic: str
    partition: int
    offset: int
    source: str | None = None
