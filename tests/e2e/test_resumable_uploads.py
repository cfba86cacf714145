"""Resumable uploads (tus 1.0) end to end, on the test session's stack: an upload cut at
random offsets and resumed with `tuspy` lands exactly once; a retried or doubled last PATCH
is still one import; a wrong offset, a bad checksum, an expired upload and an upload over the
size limit are each a problem+json answer with nothing stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import msgspec
from prometheus_client import REGISTRY
from tusclient import client as tus_client

from services.gateway.intake.csv_stream import ChunkerState, CsvChunker, RecordCounter
from services.gateway.intake.upload_parts import PART_BYTES
from shared.config import Settings
from shared.service import SETTINGS
from tests.conftest import (
    MakeKey,
    Running,
    bearer,
    second_gateway,
    table_rows,
    typed,
    wait_final,
)
from tests.e2e.test_import_pipeline import as_csv
from tidegate.sample_data import rows

UPLOADS = "/api/v1/database/uploads"
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


async def _create(http: aiohttp.ClientSession, table: str, length: int, **params: str) -> str:
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": _metadata(table=table)}
    async with http.post(UPLOADS, headers=headers, params=params) as answer:
        assert answer.status == 201, await answer.text()
        assert answer.headers["Tus-Resumable"] == "1.0.0"
        assert "Upload-Expires" in answer.headers
        return answer.headers["Location"]


async def _offset(http: aiohttp.ClientSession, url: str) -> int:
    async with http.head(url, headers=TUS) as answer:
        assert answer.status == 200
        assert answer.headers["Cache-Control"] == "no-store"
        return int(answer.headers["Upload-Offset"])


async def _settled_offset(http: aiohttp.ClientSession, url: str, before: int) -> int:
    """The offset once the gateway has stored what a cut PATCH brought: it notices the cut
    and stores the rest of the part after the client has given up on the request."""
    for _ in range(100):
        offset = await _offset(http, url)
        if offset > before:
            return offset
        await asyncio.sleep(0.05)
    return offset


async def _cut_patch(http: aiohttp.ClientSession, url: str, data: bytes, offset: int) -> None:
    """A PATCH from `offset` whose connection is lost after `data` was sent."""

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]
            await asyncio.sleep(0)
        await asyncio.sleep(0.3)  # let the gateway read it all
        raise ConnectionResetError("cut")

    headers = {**PATCH, "Upload-Offset": str(offset)}
    try:
        async with http.patch(url, data=body(), headers=headers) as answer:
            await answer.read()
    except (aiohttp.ClientError, ConnectionResetError):
        pass
    else:
        raise AssertionError("the PATCH was not cut")


def _uploads(outcome: str) -> float:
    """tidegate_gateway_uploads_total{outcome} (the session's services share a registry)."""
    return REGISTRY.get_sample_value("tidegate_gateway_uploads_total", {"outcome": outcome}) or 0


def _stored_bytes() -> float:
    return REGISTRY.get_sample_value("tidegate_gateway_upload_bytes_stored_total") or 0


async def _imports_of(db: asyncpg.Connection, table: str) -> list[Any]:
    return await db.fetch(
        "SELECT id, status, loaded_rows FROM tidegate.imports WHERE target_table = $1", table
    )


def _file(count: int) -> bytes:
    return as_csv(list(rows(count))).encode()


async def test_an_upload_cut_three_times_and_resumed_with_tuspy_lands_once(
    services: Running,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    customers: str,
    admin_token: str,
) -> None:
    data = _file(8_000)  # about 0.9 MB: several stored parts
    url = await _create(http, customers, len(data), chunk_size="500")
    chooser = random.Random(23)  # noqa: S311 (test data)
    for _ in range(3):
        offset = await _offset(http, url)
        cut_at = chooser.randrange(offset + 1, offset + (len(data) - offset) // 2)
        await _cut_patch(http, url, data[offset:cut_at], offset)
        resumed = await _settled_offset(http, url, offset)
        assert offset < resumed <= cut_at  # every byte that arrived was kept
    # Each cut is recorded as the client's doing (499), not as an unavailable database.
    cut = "SELECT status FROM tidegate.audit_log WHERE path = $1 AND method = 'PATCH'"
    for _ in range(50):
        if len(statuses := [r["status"] for r in await db.fetch(cut, url)]) == 3:
            break
        await asyncio.sleep(0.1)
    assert statuses == [499, 499, 499]

    # The rest with a tus client, which asks where the upload is and goes on from there
    # (in a thread: it blocks, and the stack runs on this event loop).
    def resume() -> None:
        client = tus_client.TusClient(services.api + UPLOADS, headers=bearer(admin_token))
        uploader = client.uploader(
            file_stream=io.BytesIO(data), url=services.api + url, chunk_size=200_000
        )
        assert uploader.offset == resumed
        uploader.upload()

    await asyncio.to_thread(resume)
    async with http.get(url) as answer:
        status = await answer.json()
    assert status["offset"] == status["length"] == len(data)
    assert status["import_url"].endswith(status["import_id"])
    final = await wait_final(db, status["import_id"])
    assert final["status"] == "completed"
    assert [r["id"] for r in await _imports_of(db, customers)] == [uuid.UUID(status["import_id"])]
    assert await table_rows(db, customers) == [typed(r) for r in rows(8_000)]
    parts = await db.fetchval(
        "SELECT count(*) FROM tidegate.upload_parts WHERE upload_id = $1",
        uuid.UUID(url.rsplit("/", 1)[1]),
    )
    assert parts == 0  # the bytes are deleted once the import holds them


async def test_replicas_take_turns_with_one_upload(
    services: Running,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    customers: str,
    settings_for: Callable[[str], Settings],
) -> None:
    """Each PATCH through the other gateway replica: each one goes on from the bytes, and
    the early check's count, that the other stored; the second completes it."""
    runner, second = await second_gateway(settings_for("gateway"))
    try:
        data = _file(6_000)
        url = await _create(http, customers, len(data), chunk_size="700")
        bounds = [0, 70_001, 200_003, 333_333, 480_007, len(data)]
        for n, (start, end) in enumerate(itertools.pairwise(bounds)):
            replica = second if n % 2 else services.api
            headers = {**PATCH, "Upload-Offset": str(start)}
            async with http.patch(replica + url, data=data[start:end], headers=headers) as a:
                assert a.status == 204, await a.text()
                assert a.headers["Upload-Offset"] == str(end)
            if end < len(data):
                state = await db.fetchval(
                    "SELECT checked FROM tidegate.uploads WHERE id = $1",
                    uuid.UUID(url.rsplit("/", 1)[1]),
                )
                counted = msgspec.msgpack.decode(state, type=ChunkerState).records
                # As one parser counts the records that end before the offset.
                assert counted == RecordCounter(CsvChunker(1)).feed(data[:end]) > 0
    finally:
        await runner.cleanup()
    async with http.get(url) as answer:
        status = await answer.json()
    final = await wait_final(db, status["import_id"])
    assert final["status"] == "completed"
    assert await table_rows(db, customers) == [typed(r) for r in rows(6_000)]


async def test_an_upload_begun_before_the_early_check_is_finished_and_checked_at_the_end(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    """Bytes stored with no early-check state (an upload begun before migration 0016):
    the rest is taken unchecked, not read as the start of a file, and the whole file is
    checked when it is complete."""
    wide = [[*row[:8], row[8] + " " + "x" * 250] for row in rows(5_000)]
    data = as_csv(wide).encode()
    url = await _create(http, customers, len(data))
    half = 100_007  # inside a record: the rest (over 1 MiB, so a part is stored) has no header
    assert len(data) - half > PART_BYTES
    async with http.patch(url, data=data[:half], headers={**PATCH, "Upload-Offset": "0"}) as a:
        assert a.status == 204
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    await db.execute("UPDATE tidegate.uploads SET checked = NULL WHERE id = $1", upload_id)
    headers = {**PATCH, "Upload-Offset": str(half)}
    async with http.patch(url, data=io.BytesIO(data[half:]), headers=headers) as a:
        assert a.status == 204, await a.text()
    import_id = await db.fetchval("SELECT import_id FROM tidegate.uploads WHERE id = $1", upload_id)
    final = await wait_final(db, str(import_id))
    assert final["status"] == "completed"
    assert await table_rows(db, customers) == [typed(r) for r in wide]


async def test_a_retried_or_doubled_last_patch_is_one_import(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    data = _file(300)
    url = await _create(http, customers, len(data))
    half = len(data) // 2
    async with http.patch(url, data=data[:half], headers={**PATCH, "Upload-Offset": "0"}) as a:
        assert a.status == 204
        assert a.headers["Upload-Offset"] == str(half)

    async def last() -> aiohttp.ClientResponse:
        headers = {**PATCH, "Upload-Offset": str(half)}
        async with http.patch(url, data=data[half:], headers=headers) as answer:
            await answer.read()
            return answer

    both = await asyncio.gather(last(), last())
    assert sorted(a.status for a in both) in ([204, 409], [204, 429])
    done = next(a for a in both if a.status == 204)
    assert done.headers["Upload-Offset"] == str(len(data))
    assert 'rel="related"' in done.headers["Link"]
    again = await last()  # the client did not hear the 204 and sends it once more
    assert again.status == 409
    assert again.headers["Upload-Offset"] == str(len(data))
    imports = await _imports_of(db, customers)
    assert len(imports) == 1
    await wait_final(db, str(imports[0]["id"]))
    assert await table_rows(db, customers) == [typed(r) for r in rows(300)]


async def test_refusals_are_problems_and_store_nothing(
    services: Running,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    customers: str,
) -> None:
    data = _file(50)
    url = await _create(http, customers, len(data))
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])

    async def stored() -> tuple[int, int]:
        row = await db.fetchrow(
            "SELECT received, (SELECT count(*) FROM tidegate.upload_parts WHERE upload_id = $1)"
            " AS parts FROM tidegate.uploads WHERE id = $1",
            upload_id,
        )
        return (row["received"], row["parts"]) if row is not None else (-1, -1)

    # A wrong offset: 409, and where the upload is.
    async with http.patch(url, data=data[:10], headers={**PATCH, "Upload-Offset": "7"}) as a:
        assert a.status == 409
        assert a.headers["Upload-Offset"] == "0"
        problem = await a.json(content_type="application/problem+json")
        assert (problem["type"], problem["offset"]) == ("/problems/wrong-offset", 0)
    # A checksum that does not match: 460, nothing of the part kept.
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    headers = {**PATCH, "Upload-Offset": "0", "Upload-Checksum": f"sha256 {wrong}"}
    async with http.patch(url, data=data[:20], headers=headers) as a:
        assert a.status == 460
        problem = await a.json(content_type="application/problem+json")
        assert problem["type"] == "/problems/checksum-mismatch"
    assert await stored() == (0, 0)
    # The right checksum: kept.
    right = base64.b64encode(hashlib.sha256(data[:20]).digest()).decode()
    headers = {**PATCH, "Upload-Offset": "0", "Upload-Checksum": f"sha256 {right}"}
    async with http.patch(url, data=data[:20], headers=headers) as a:
        assert a.status == 204
    assert await stored() == (20, 1)
    # Past its length: 413, and nothing past it.
    headers = {**PATCH, "Upload-Offset": "20"}
    async with http.patch(url, data=data[20:] + b"9,extra\n", headers=headers) as a:
        assert a.status == 413
    assert await stored() == (20, 1)
    # Expired: 410, and its bytes deleted.
    await db.execute(
        "UPDATE tidegate.uploads SET expires_at = now() - interval '1 second' WHERE id = $1",
        upload_id,
    )
    expired = _uploads("expired")
    async with http.head(url, headers=TUS) as a:
        assert a.status == 410
    assert _uploads("expired") == expired + 1
    assert await stored() == (-1, -1)
    # Over the file size limit: refused when it is created.
    limit = services.apps["gateway"][SETTINGS].max_file_bytes
    headers = {
        **TUS,
        "Upload-Length": str(limit + 1),
        "Upload-Metadata": _metadata(table=customers),
    }
    async with http.post(UPLOADS, headers=headers) as a:
        assert a.status == 413
        problem = await a.json(content_type="application/problem+json")
        assert problem["type"] == "/problems/file-too-large"
    # Without the protocol's version: 412.
    async with http.head(url, headers={}) as a:
        assert a.status == 412
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.uploads WHERE target_table = $1", customers
        )
        == 0
    )
    assert await _imports_of(db, customers) == []


async def test_a_file_refused_at_the_end_ends_the_upload_with_the_problem(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    data = b"nope,not,the,header\n1,2,3,4\n"
    url = await _create(http, customers, len(data))
    async with http.patch(url, data=data, headers={**PATCH, "Upload-Offset": "0"}) as a:
        assert a.status == 422
        problem = await a.json(content_type="application/problem+json")
        assert problem["type"] == "/problems/header-mismatch"
    async with http.head(url, headers=TUS) as a:
        assert a.status == 404
    assert await _imports_of(db, customers) == []


async def test_a_file_that_cannot_be_one_import_is_refused_before_its_end(
    services: Running, db: asyncpg.Connection, customers: str, make_key: MakeKey
) -> None:
    """Too many records, and a header that does not fit, are refused by the PATCH whose
    bytes show them, counted across PATCHes, not after the last byte."""
    token = await make_key("data_manager", max_records_per_import=2_000, requests_per_minute=1_000)
    before = {outcome: _uploads(outcome) for outcome in ("created", "completed", "refused")}
    stored = _stored_bytes()
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as session:
        # 2,000 records fit; the upload's first 180 kB (in three PATCHes, cut inside
        # records) hold more than 1,500 of them, and are stored.
        fits = _file(2_000)
        url = await _create(session, customers, len(fits))
        for start, end in ((0, 50_000), (50_000, 120_011), (120_011, 180_007)):
            headers = {**PATCH, "Upload-Offset": str(start)}
            async with session.patch(url, data=fits[start:end], headers=headers) as a:
                assert a.status == 204, await a.text()
        async with session.patch(
            url, data=fits[180_007:], headers={**PATCH, "Upload-Offset": "180007"}
        ) as a:
            assert a.status == 204
        async with session.get(url) as a:
            assert (await a.json())["import_id"] is not None

        # 30,000 records do not: refused by the PATCH that brings the 2,001st, at about
        # 10 % of the file, and the upload is gone with its bytes.
        many = _file(30_000)
        url = await _create(session, customers, len(many))
        offset, refused = 0, None
        while refused is None and offset < len(many) // 2:
            end = offset + 100_000
            async with session.patch(
                url, data=many[offset:end], headers={**PATCH, "Upload-Offset": str(offset)}
            ) as a:
                if a.status == 204:
                    offset = end
                else:
                    assert a.status == 422
                    refused = await a.json(content_type="application/problem+json")
        assert refused is not None, "not refused in the file's first half"
        assert (refused["type"], refused["max_records"]) == ("/problems/too-many-records", 2_000)
        assert offset < len(many) // 5
        async with session.head(url, headers=TUS) as a:
            assert a.status == 404

        # A header that does not fit the table: refused with the first part, not at the end.
        wrong = b"nope,not,the,header\n" + b"1,2,3,4\n" * 40_000
        url = await _create(session, customers, len(wrong))
        async with session.patch(
            url, data=wrong[:100_000], headers={**PATCH, "Upload-Offset": "0"}
        ) as a:
            assert a.status == 422
            problem = await a.json(content_type="application/problem+json")
            assert problem["type"] == "/problems/header-mismatch"
    upload_ids = await db.fetch(
        "SELECT id FROM tidegate.uploads WHERE target_table = $1", customers
    )
    assert len(upload_ids) == 1  # only the one that became an import
    assert len(await _imports_of(db, customers)) == 1
    # Prometheus: three created, one completed, two refused; the stored parts' bytes.
    assert {o: _uploads(o) - n for o, n in before.items()} == {
        "created": 3,
        "completed": 1,
        "refused": 2,
    }
    assert _stored_bytes() - stored >= 180_007 + 100_000


async def test_an_upload_is_its_creators_and_follows_the_keys_role_and_tables(
    services: Running, db: asyncpg.Connection, customers: str, make_key: MakeKey
) -> None:
    owner = await make_key("data_manager", requests_per_minute=1_000, concurrent_imports=5)
    other = await make_key("data_manager", requests_per_minute=1_000)
    viewer = await make_key("viewer", requests_per_minute=1_000)
    scoped = await make_key("data_manager", tables=["public.somewhere_else"])
    async with aiohttp.ClientSession(base_url=services.api) as session:
        created = {
            **TUS,
            "Upload-Length": "100",
            "Upload-Metadata": _metadata(table=customers),
            **bearer(owner),
        }
        async with session.post(UPLOADS, headers=created) as a:
            assert a.status == 201
            url = a.headers["Location"]
        async with session.head(url, headers={**TUS, **bearer(other)}) as a:
            assert a.status == 404  # not yours: it does not exist for you
        async with session.post(UPLOADS, headers={**created, **bearer(viewer)}) as a:
            assert a.status == 403  # a viewer may only validate
        validating = {**created, **bearer(viewer)}
        async with session.post(UPLOADS, headers=validating, params={"validate_only": "1"}) as a:
            assert a.status == 201
        async with session.post(UPLOADS, headers={**created, **bearer(scoped)}) as a:
            assert a.status == 403  # outside the key's tables
        async with session.delete(url, headers={**TUS, **bearer(owner)}) as a:
            assert a.status == 204
        async with session.head(url, headers={**TUS, **bearer(owner)}) as a:
            assert a.status == 404
    actions = await db.fetch(
        "SELECT action, status FROM tidegate.audit_log WHERE target = $1 ORDER BY id",
        url.rsplit("/", 1)[1],
    )
    assert [tuple(a) for a in actions][:2] == [("uploads.create", 201), ("uploads.offset", 404)]
