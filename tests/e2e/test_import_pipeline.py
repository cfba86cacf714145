"""HTTP in, table out: the whole pipeline on the real PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from typing import Any

import aiohttp
import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from shared import events, topics
from shared.kafka.records import cloudevent_headers
from tests.conftest import Running, table_rows, typed, wait_final
from tidegate.sample_data import HEADER, rows


def as_csv(data: list[list[str]]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(data)
    return out.getvalue()


async def post_csv(
    http: aiohttp.ClientSession, table: str, body: str | bytes, **params: str
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with http.post(
        "/api/v1/database/import",
        params={"table": table, **params},
        data=body,
        headers={"Content-Type": "text/csv"},
    ) as response:
        return response.status, await response.json(content_type=None), response


def consumed(service: str, topic: str) -> float:
    value = REGISTRY.get_sample_value(
        "tidegate_events_consumed_total",
        {"service": service, "topic": topic, "outcome": "applied"},
    )
    return value or 0.0


def ignored(service: str) -> float:
    value = REGISTRY.get_sample_value(
        "tidegate_events_ignored_total", {"service": service, "reason": "import_finished"}
    )
    return value or 0.0


async def test_5000_rows_arrive_exactly(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    data = list(rows(5000))
    status, body, response = await post_csv(http, customers, as_csv(data), chunk_size="1000")
    assert status == 202, body
    assert response.headers["Location"] == f"/api/v1/database/imports/{body['id']}"
    assert (body["status"], body["counts"]["file_rows"], body["chunks"]["total"]) == (
        "pending",
        5000,
        5,
    )
    final = await wait_final(db, body["id"])
    assert final["status"] == "completed"
    assert (
        final["total_rows"],
        final["valid_rows"],
        final["loaded_rows"],
        final["failed_rows"],
    ) == (5000, 5000, 5000, 0)
    assert await table_rows(db, customers) == [typed(r) for r in data]
    async with http.get(response.headers["Location"]) as answer:
        resource = await answer.json()
    assert resource["status"] == "completed"
    assert resource["progress"] == 1.0
    assert resource["chunks"] == {"total": 5, "validated": 5, "loaded": 5}
    lineage = await db.fetchval(
        "SELECT sum(row_count) FROM tidegate.load_lineage WHERE import_id = $1",
        uuid.UUID(body["id"]),
    )
    assert lineage == 5000


async def test_bad_rows_are_reported_and_good_rows_loaded(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    existing = next(rows(1, start_id=900_000))
    await db.execute(
        f"INSERT INTO {customers} ({', '.join(HEADER)}) VALUES ($1, $2, $3, $4, $5, $6, $7,"
        " $8, $9)",
        *typed(existing),
    )
    data = list(rows(300, bad_every=10))
    duplicate = next(rows(1, start_id=301))
    duplicate[2] = existing[2]  # an email already in the table: refused by the unique index
    data.append(duplicate)
    # The file line on which each record starts (notes may contain newlines).
    starts, line = [], 2
    for row in data:
        starts.append(line)
        line += as_csv([row]).count("\n") - 1
    status, body, _ = await post_csv(http, customers, as_csv(data), chunk_size="64")
    assert status == 202, body
    final = await wait_final(db, body["id"])
    assert final["status"] == "completed_with_errors"
    assert (
        final["total_rows"],
        final["valid_rows"],
        final["loaded_rows"],
        final["failed_rows"],
    ) == (301, 270, 270, 31)
    assert final["duplicate_rows"] == 1

    bad_cell = {
        "signup_date": "invalid_date",
        "balance": "decimal_comma",
        "active": "invalid_boolean",
        "name": "required",
        "id": "invalid_integer",
    }
    clean = list(rows(300))
    expected = []
    for index, (row, good) in enumerate(zip(data[:300], clean, strict=True)):
        for column, value, original in zip(HEADER, row, good, strict=True):
            if value != original:
                expected.append((starts[index], column, bad_cell[column], value, "validated"))
    assert len(expected) == 30
    async with http.get(
        f"/api/v1/database/imports/{body['id']}/errors", params={"limit": "1000"}
    ) as answer:
        report = await answer.json()
    assert report["total"] == 31
    got = [(e["line"], e["column"], e["code"], e["value"], e["stage"]) for e in report["items"]]
    assert got[:30] == expected
    last = report["items"][30]
    assert (last["line"], last["column"], last["code"], last["stage"]) == (
        starts[300],
        "email",
        "duplicate_in_table",
        "validated",
    )
    assert last["message"] == f'"email" = {existing[2]!r} already exists in {customers}'

    good_rows = [typed(r) for r, c in zip(data[:300], clean, strict=True) if r == c]
    assert await table_rows(db, customers) == [*good_rows, typed(existing)]


async def test_multipart_upload(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    form = aiohttp.FormData()
    form.add_field(
        "file", as_csv(list(rows(20))).encode(), filename="people.csv", content_type="text/csv"
    )
    async with http.post(
        "/api/v1/database/import", params={"table": customers}, data=form
    ) as response:
        body = await response.json()
        assert response.status == 202, body
    assert body["filename"] == "people.csv"
    assert (await wait_final(db, body["id"]))["loaded_rows"] == 20


async def test_a_redelivered_chunk_loads_nothing_twice(
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    customers: str,
    services: Running,
    bootstrap: str,
) -> None:
    status, body, _ = await post_csv(http, customers, as_csv(list(rows(250))), chunk_size="100")
    assert status == 202
    import_id = uuid.UUID(body["id"])
    before = await wait_final(db, body["id"])
    assert before["status"] == "completed"
    validator_ignored = ignored("validator")
    auditor_seen = consumed("auditor", topics.CHUNK_SUBMITTED)

    # The relay crashed after publishing but before marking: every chunk goes out again.
    stored = await db.fetch(
        "SELECT event_id, event_type, payload FROM tidegate.outbox WHERE import_id = $1",
        import_id,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for record in stored:
            await producer.send_and_wait(
                topics.CHUNK_SUBMITTED,
                record["payload"],
                key=record["event_id"].encode(),
                headers=cloudevent_headers(record["event_id"], record["event_type"], "/test"),
            )
    finally:
        await producer.stop()
    for _ in range(300):
        if (
            ignored("validator") >= validator_ignored + 3
            and consumed("auditor", topics.CHUNK_SUBMITTED) >= auditor_seen + 3
        ):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the redelivered chunks were not processed")

    assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 250
    after = await db.fetchrow("SELECT * FROM tidegate.imports WHERE id = $1", import_id)
    assert after is not None
    for field in (
        "status",
        "total_rows",
        "valid_rows",
        "loaded_rows",
        "failed_rows",
        "chunks_loaded",
        "version",
    ):
        assert after[field] == before[field], field
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.chunk_ledger WHERE import_id = $1", import_id
        )
        == 3
    )
    # The finished import's chunks were not validated again: no key claims re-created.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.import_key_chunks WHERE import_id = $1", import_id
        )
        == 0
    )


async def test_upstream_producers_may_produce_chunks_directly(
    db: asyncpg.Connection, customers: str, bootstrap: str, services: Running
) -> None:
    import_id = uuid.uuid4()
    data = list(rows(30))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for seq, part in enumerate((data[:20], data[20:])):
            event = events.ChunkSubmitted(
                import_id=import_id,
                seq=seq,
                table=customers,
                columns=tuple(HEADER),
                rows=part,
                first_line=2 + 20 * seq,
                last=seq == 1,
            )
            headers = cloudevent_headers(
                events.event_id(event), events.event_type(event), "/upstream/crm"
            )
            headers = [(k, v) for k, v in headers if k != "content-type"]
            headers.append(("content-type", b"application/json"))
            await producer.send_and_wait(
                topics.CHUNK_SUBMITTED,
                msgspec.json.encode(event),
                key=str(import_id).encode(),
                headers=headers,
            )
    finally:
        await producer.stop()
    final = await wait_final(db, str(import_id))
    assert (final["status"], final["source"], final["loaded_rows"]) == ("completed", "kafka", 30)
    assert await table_rows(db, customers) == [typed(r) for r in data]


async def test_undecodable_events_go_to_the_dead_letter_topic(
    bootstrap: str, services: Running
) -> None:
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.CHUNK_SUBMITTED, b"\xc1 not msgpack " + marker, key=marker
        )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topics.DEAD_LETTER) or set()
        if not partitions:
            partitions = {0}
        consumer.assign([TopicPartition(topics.DEAD_LETTER, p) for p in partitions])
        await consumer.seek_to_beginning()
        found: dict[str, bytes] = {}
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if record.key == marker:
                        found = {k: bytes(v) for k, v in record.headers}
            if found:
                break
    finally:
        await consumer.stop()
    assert found, "no dead letter"
    assert b"undecodable" in found["tg_error"]
    assert found["tg_source_topic"] == topics.CHUNK_SUBMITTED.encode()
    assert found["tg_consumer_group"] in (b"tidegate-validator", b"tidegate-auditor")
