"""Anti-abuse limits, shared by every gateway replica through PostgreSQL: requests per
minute, concurrent imports, file size, Idempotency-Key."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
import asyncpg
import msgspec
import pytest
from yarl import URL

from shared.config import Settings
from tests.conftest import MakeKey, Running, bearer, second_gateway, wait_final

CSV = b"id,name,email,signup_date,active\n"


def row(n: int) -> bytes:
    return f"{n},N{n},n{n}@example.com,2024-01-02,yes\n".encode()


def _rate_fields(headers: Mapping[str, str]) -> tuple[int, int]:
    match = re.fullmatch(r'"per-key";r=(\d+);t=(\d+)', headers["RateLimit"])
    assert match, headers
    return int(match[1]), int(match[2])


async def test_the_61st_request_in_a_minute_is_429_on_any_gateway(
    services: Running, make_key: MakeKey, settings_for: Callable[[str], Settings]
) -> None:
    token = await make_key("viewer", name="rate limited")  # the default: 60 per minute
    runner, second = await second_gateway(settings_for("gateway"))
    try:
        async with aiohttp.ClientSession(headers=bearer(token)) as session:
            remaining = []
            for n in range(60):  # alternate between the two gateways
                api = services.api if n % 2 else second
                async with session.get(f"{api}/api/v1/me") as response:
                    assert response.status == 200, n
                    assert response.headers["RateLimit-Policy"] == '"per-key";q=60;w=60'
                    remaining.append(_rate_fields(response.headers)[0])
            assert remaining == list(range(59, -1, -1))
            for api in (services.api, second):
                async with session.get(f"{api}/api/v1/me") as response:
                    assert response.status == 429
                    problem = await response.json(content_type="application/problem+json")
                    assert problem["type"] == "/problems/rate-limited"
                    assert 1 <= int(response.headers["Retry-After"]) <= 60
                    assert _rate_fields(response.headers)[0] == 0
                    assert response.headers["RateLimit-Policy"] == '"per-key";q=60;w=60'
    finally:
        await runner.cleanup()


async def test_a_key_with_its_own_budget(services: Running, make_key: MakeKey) -> None:
    token = await make_key("viewer", name="small budget", requests_per_minute=3)
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as session:
        statuses = []
        for _ in range(4):
            async with session.get("/api/v1/me") as response:
                statuses.append(response.status)
    assert statuses == [200, 200, 200, 429]


async def _slow_body(release: asyncio.Event, *chunks: bytes) -> AsyncIterator[bytes]:
    yield chunks[0]
    await release.wait()
    for chunk in chunks[1:]:
        yield chunk


async def test_a_second_import_while_one_runs_is_429_until_it_ends(
    services: Running, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    token = await make_key("data_manager", name="one at a time")  # the default: 1
    url = f"{services.api}/api/v1/database/import?table={customers}"
    headers = {**bearer(token), "Content-Type": "text/csv"}
    async with aiohttp.ClientSession(headers=headers) as session:
        # 1. While the first body is still arriving, a second import is refused at once.
        release = asyncio.Event()
        first = asyncio.create_task(session.post(url, data=_slow_body(release, CSV, row(1))))
        for _ in range(100):
            await asyncio.sleep(0.05)
            async with session.post(url, data=CSV + row(2)) as response:
                if response.status == 429:
                    problem = await response.json(content_type="application/problem+json")
                    break
        assert problem["type"] == "/problems/too-many-concurrent-imports"
        assert problem["concurrent_imports"] == 1
        release.set()
        async with await first as response:
            assert response.status == 202
            first_id = (await response.json())["id"]
        # 2. Once it has ended, the next one is accepted.
        await wait_final(db, first_id)
        async with session.post(url, data=CSV + row(3)) as response:
            assert response.status == 202
            await wait_final(db, (await response.json())["id"])
        # 3. An import that has not finished holds the slot: the database refuses a second.
        key_id = await db.fetchval(
            "SELECT key_id FROM tidegate.imports WHERE id = $1::uuid", first_id
        )
        running = uuid.uuid4()
        await db.execute(
            "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source,"
            " key_id, slot) VALUES ($1, $2, '{id}', 1, 'http', $3, 0)",
            running,
            customers,
            key_id,
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await db.execute(
                "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source,"
                " key_id, slot) VALUES ($1, $2, '{id}', 1, 'http', $3, 0)",
                uuid.uuid4(),
                customers,
                key_id,
            )
        async with session.post(url, data=CSV + row(4)) as response:
            problem = await response.json(content_type="application/problem+json")
            assert response.status == 429
            assert problem["running"] == [f"/api/v1/database/imports/{running}"]
        await db.execute(
            "UPDATE tidegate.imports SET status = 'failed', finished_at = now() WHERE id = $1",
            running,
        )
        async with session.post(url, data=CSV + row(5)) as response:
            assert response.status == 202
            await wait_final(db, (await response.json())["id"])
    assert await db.fetchval(f"SELECT array_agg(id ORDER BY id) FROM {customers}") == [1, 3, 5]


async def test_a_slow_upload_takes_one_slot_of_two(
    services: Running, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    """A key with concurrent_imports 2: while one file is still arriving, a second, tiny
    upload is accepted (one upload locked every free slot, so it got 429 "another import is
    being uploaded"); a third, while both run, is refused."""
    token = await make_key("data_manager", name="two at a time", concurrent_imports=2)
    url = f"{services.api}/api/v1/database/import?table={customers}"
    headers = {**bearer(token), "Content-Type": "text/csv"}
    async with aiohttp.ClientSession(headers=headers) as session:
        release = asyncio.Event()
        first = asyncio.create_task(session.post(url, data=_slow_body(release, CSV, row(1))))
        await asyncio.sleep(0.5)  # the first body is arriving
        async with session.post(url, data=CSV + row(2)) as response:
            assert response.status == 202, await response.text()
            second_id = (await response.json())["id"]
        async with session.post(url, data=CSV + row(3)) as response:
            if await db.fetchval(
                "SELECT finished_at IS NULL FROM tidegate.imports WHERE id = $1::uuid", second_id
            ):
                assert response.status == 429
        release.set()
        async with await first as response:
            assert response.status == 202
            first_id = (await response.json())["id"]
        slots = await db.fetchval(
            "SELECT array_agg(slot ORDER BY slot) FROM tidegate.imports WHERE id = ANY($1::uuid[])",
            [first_id, second_id],
        )
        assert sorted(slots) == [0, 1]
        for import_id in (first_id, second_id):
            assert (await wait_final(db, import_id))["status"] == "completed"
    assert 1 in await db.fetchval(f"SELECT array_agg(id) FROM {customers}")


async def _raw_request(port: int, head: bytes, body: bytes) -> tuple[bytes, float]:
    """Send `head` and the start of a body over a socket; (the answer, seconds it took)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return answer, time.perf_counter() - started


async def test_100mb_and_one_byte_is_refused_before_the_body_is_read(
    services: Running, admin_token: str, customers: str, db: asyncpg.Connection
) -> None:
    port = int(services.api.rsplit(":", 1)[1])
    head = (
        f"POST /api/v1/database/import?table={customers} HTTP/1.1\r\n"
        f"Host: localhost\r\nAuthorization: Bearer {admin_token}\r\n"
        f"Content-Type: text/csv\r\nContent-Length: {100 * 1024 * 1024 + 1}\r\n\r\n"
    ).encode()
    before = await db.fetchval("SELECT count(*) FROM tidegate.imports")
    # Only 64 KiB of the announced 100 MB are ever sent: the answer cannot wait for the rest.
    answer, _ = await _raw_request(port, head, CSV + b"x" * 65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"/problems/file-too-large" in answer
    assert await db.fetchval("SELECT count(*) FROM tidegate.imports") == before


async def test_a_streamed_body_is_cut_off_at_the_limit(
    settings_for: Callable[[str], Settings], admin_token: str, customers: str
) -> None:
    """Without Content-Length the byte count decides: a gateway with a 1 MiB limit answers
    413 while the body is still arriving (it never ends)."""
    limited = msgspec.structs.replace(settings_for("gateway"), max_file_bytes=1 << 20)
    runner, api = await second_gateway(limited)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield CSV
        for n in range(10**9):
            block = b"".join(
                row(n * 100 + i).replace(b",N", b",N" + b"n" * 500) for i in range(100)
            )
            sent += len(block)
            yield block

    try:
        async with aiohttp.ClientSession(headers=bearer(admin_token)) as session:
            async with session.post(
                f"{api}/api/v1/database/import",
                params={"table": customers},
                data=endless(),
                headers={"Content-Type": "text/csv"},
            ) as response:
                assert response.status == 413
    finally:
        await runner.cleanup()
    # The body never ends: answering at all means the gateway stopped reading. What the
    # client got to send is the limit plus socket and stream buffers.
    assert sent < 32 << 20


async def test_idempotency_key(
    http: aiohttp.ClientSession, services: Running, customers: str, db: asyncpg.Connection
) -> None:
    url = f"/api/v1/database/import?table={customers}"
    body = CSV + row(10)
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}", "Content-Type": "text/csv"}
    async with http.post(url, data=body, headers=key) as response:
        assert response.status == 202
        first = await response.json()
        assert "Idempotent-Replayed" not in response.headers
    await wait_final(db, first["id"])
    async with http.post(url, data=body, headers=key) as response:
        assert response.status == 202
        assert response.headers["Idempotent-Replayed"] == "true"
        again = await response.json()
    assert again["id"] == first["id"] and again["status"] == "completed"
    async with http.post(url, data=CSV + row(11), headers=key) as response:
        assert response.status == 422
        assert (await response.json())["type"] == "/problems/idempotency-key-reused"
    async with http.post(url + "&dry_run=true", data=body, headers=key) as response:
        assert response.status == 422  # same body, other parameters
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.imports WHERE target_table = $1", customers
        )
        == 1
    )
    # While the first request with a key is still being received, a retry is 409.
    release = asyncio.Event()
    other = {"Idempotency-Key": f'"{uuid.uuid4()}"', "Content-Type": "text/csv"}
    first_try = asyncio.create_task(
        http.post(url, data=_slow_body(release, CSV, row(12)), headers=other)
    )
    for _ in range(100):
        await asyncio.sleep(0.05)
        async with http.post(url, data=CSV + row(12), headers=other) as response:
            if response.status == 409:
                assert (await response.json())["type"] == "/problems/idempotency-key-in-use"
                break
    else:
        raise AssertionError("never 409")
    release.set()
    async with await first_try as response:
        assert response.status == 202
        await wait_final(db, (await response.json())["id"])
    for bad in ("", "x" * 256, "naïve"):
        async with http.post(url, data=body, headers={**key, "Idempotency-Key": bad}) as response:
            assert response.status == 400, bad
    assert await db.fetchval(f"SELECT array_agg(id ORDER BY id) FROM {customers}") == [10, 12]


async def test_crafted_names_ids_and_headers_are_refused_cleanly(
    http: aiohttp.ClientSession, services: Running, customers: str, db: asyncpg.Connection
) -> None:
    for table in (
        f"{customers}; DROP TABLE {customers}",
        f'{customers}" OR 1=1 --',
        "pg_catalog.pg_authid",
        "tidegate.api_keys",
        "../../etc/passwd",
        "public." + "x" * 5000,
    ):
        for method, path in (
            ("POST", "/api/v1/database/import"),
            ("GET", "/api/v1/database/export"),
        ):
            async with http.request(
                method,
                path,
                params={"table": table},
                data=CSV,
                headers={"Content-Type": "text/csv"},
            ) as response:
                assert response.status == 404, (table, method)
                assert (await response.json())["type"] == "/problems/unknown-table"
    async with http.get(
        "/api/v1/database/export", params={"table": customers, "columns": 'id, "name"; --'}
    ) as response:
        assert response.status == 400
    for path in (
        "/api/v1/database/imports/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/database/imports/%2e%2e/%2e%2e/keys",
        "/api/v1/database/imports/1%20OR%201=1/report",
        "/api/v1/keys/..%2F..",
    ):
        async with http.get(URL(services.api + path, encoded=True)) as response:  # sent as is
            assert response.status == 404, path
            assert response.headers["Content-Type"].startswith("application/problem+json")
    async with http.get("/api/v1/me", headers={"X-Padding": "p" * 20_000}) as response:
        assert response.status in (400, 431)
    async with http.get("/api/v1/me") as response:  # and the gateway serves on
        assert response.status == 200
    assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 0


async def test_the_unique_index_has_the_last_word_on_slots(
    services: Running, make_key: MakeKey, customers: str, db: asyncpg.Connection, database_url: str
) -> None:
    """Another gateway's import commits into the slot after this gateway looked: the insert
    waits on the unique index, fails, and the answer is 429, with nothing stored."""
    token = await make_key("data_manager", name="racer")
    url = f"{services.api}/api/v1/database/import?table={customers}"
    other = await asyncpg.connect(database_url)
    racing = uuid.uuid4()
    try:
        async with aiohttp.ClientSession(headers=bearer(token)) as session:
            async with session.get(f"{services.api}/api/v1/me") as response:
                key_id = uuid.UUID((await response.json())["id"])
            transaction = other.transaction()
            await transaction.start()
            await other.execute(
                "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source,"
                " key_id, slot) VALUES ($1, $2, '{id}', 1, 'http', $3, 0)",
                racing,
                customers,
                key_id,
            )
            post = asyncio.create_task(
                session.post(url, data=CSV + row(1), headers={"Content-Type": "text/csv"})
            )
            for _ in range(200):  # until the gateway's insert waits on the uncommitted row
                waiting = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND application_name = 'tidegate-gateway'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting == 1
            await transaction.commit()
            async with await post as response:
                assert response.status == 429
                problem = await response.json()
        assert problem["type"] == "/problems/too-many-concurrent-imports"
        assert problem["running"] == [f"/api/v1/database/imports/{racing}"]
        assert (
            await db.fetchval("SELECT count(*) FROM tidegate.imports WHERE key_id = $1", key_id)
            == 1
        )
        assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 0
    finally:
        await db.execute(
            "UPDATE tidegate.imports SET status = 'failed', finished_at = now() WHERE id = $1",
            racing,
        )
        await other.close()
