"""Slow and hostile clients cannot freeze the gateway (issue 19, items 1 and 2): an upload
holds no database connection while it waits on its client, every wait is bounded, the
graceful stop ends within its bound, and parsing stays linear whatever the quoting."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest

from tests.conftest import MakeKey, bearer, gateway_process
from tidegate.sample_data import write_csv

TRICKLE_BYTES_PER_SECOND = 1024


def sample(rows: int) -> bytes:
    out = io.StringIO()
    write_csv(out, rows)
    return out.getvalue().encode()


async def trickle(body: bytes, stop: asyncio.Event) -> AsyncIterator[bytes]:
    """The body at 1 KB/s (a phone on a bad link), until `stop`."""
    for start in range(0, len(body), TRICKLE_BYTES_PER_SECOND):
        if stop.is_set():
            return
        yield body[start : start + TRICKLE_BYTES_PER_SECOND]
        await asyncio.sleep(1)


async def slow_upload(
    api: str, token: str, table: str, body: bytes, stop: asyncio.Event
) -> int | str:
    """The status the gateway answered, or how the connection ended."""
    try:
        async with aiohttp.ClientSession(base_url=api, headers=bearer(token)) as http:
            async with http.post(
                "/api/v1/database/import",
                params={"table": table},
                data=trickle(body, stop),
                headers={"Content-Type": "text/csv"},
            ) as answer:
                await answer.read()
                return answer.status
    except aiohttp.ClientError as exc:
        return type(exc).__name__


async def test_thirty_trickling_uploads_do_not_freeze_the_gateway(
    database_url: str, bootstrap: str, make_key: MakeKey, customers: str, tmp_path: Path
) -> None:
    """30 clients each send a 9,000-row file at 1 KB/s. Meanwhile an admin creates a key and
    reads /me at once, and the gateway, told to stop, exits cleanly within its bound while
    the uploads still trickle."""
    stack = await gateway_process(tmp_path, database_url, bootstrap, TIDEGATE_SHUTDOWN_SECONDS="5")
    admin = await make_key("admin", requests_per_minute=1000)
    tokens = [await make_key("data_manager", name=f"phone {i}") for i in range(30)]
    body = sample(9000)
    stop = asyncio.Event()
    uploads = [
        asyncio.create_task(slow_upload(stack.api_url, token, customers, body, stop))
        for token in tokens
    ]
    try:
        await asyncio.sleep(3)  # every upload is in the gateway's hands, trickling
        assert not any(task.done() for task in uploads)
        async with aiohttp.ClientSession(base_url=stack.api_url, headers=bearer(admin)) as http:
            for _ in range(3):
                started = time.monotonic()
                async with http.post(
                    "/api/v1/keys",
                    json={"name": "made while others trickle", "role": "viewer"},
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as created:
                    assert created.status == 201
                async with http.get("/api/v1/me", timeout=aiohttp.ClientTimeout(total=5)) as me:
                    assert me.status == 200
                assert time.monotonic() - started < 2
                await asyncio.sleep(1)
        assert not any(task.done() for task in uploads)  # still trickling
        started = time.monotonic()
        codes = await asyncio.to_thread(stack.stop)
        stopped_in = time.monotonic() - started
    finally:
        stop.set()
        stack.stop()
    outcomes = await asyncio.gather(*uploads)
    assert codes == {"gateway": 0}
    assert stopped_in < 5 + 5  # the shutdown bound, plus the cleanup of relay and pool
    # Each trickling client was told to come back (503) or had its connection closed.
    assert all(outcome == 503 or isinstance(outcome, str) for outcome in outcomes), outcomes


async def test_an_idle_upload_is_answered_408(
    database_url: str, bootstrap: str, make_key: MakeKey, customers: str, tmp_path: Path
) -> None:
    """A client that stops sending mid-body gets 408 after the idle timeout, and nothing is
    stored."""
    stack = await gateway_process(tmp_path, database_url, bootstrap, TIDEGATE_BODY_IDLE_SECONDS="1")
    token = await make_key("data_manager")
    head = sample(100)[:2000]

    async def stalls() -> AsyncIterator[bytes]:
        yield head
        await asyncio.sleep(30)

    try:
        async with aiohttp.ClientSession(base_url=stack.api_url, headers=bearer(token)) as http:
            started = time.monotonic()
            async with http.post(
                "/api/v1/database/import",
                params={"table": customers},
                data=stalls(),
                headers={"Content-Type": "text/csv"},
                timeout=aiohttp.ClientTimeout(total=20),
            ) as answer:
                problem = await answer.json(content_type=None)
            assert answer.status == 408
            assert problem["type"] == "/problems/request-timeout"
            assert time.monotonic() - started < 10
    finally:
        stack.stop()


@pytest.mark.parametrize("opening", [b'"', b'1,"'])
async def test_an_unclosed_quote_in_100_mb_is_refused_in_bounded_memory(
    database_url: str,
    bootstrap: str,
    make_key: MakeKey,
    customers: str,
    tmp_path: Path,
    opening: bytes,
) -> None:
    """A 100 MB body whose last record opens a quoted field that never closes is refused
    with 422 naming the record's line, long before its end, and the gateway grows by less
    than 100 MB (it grew by about 45 times the input before)."""
    stack = await gateway_process(tmp_path, database_url, bootstrap)
    token = await make_key("data_manager")
    gateway = psutil.Process(stack.processes["gateway"].pid)
    before = gateway.memory_info().rss
    head = sample(3)
    line = head.count(b"\n") + 1
    filler = b'ab""cd\n' * (1 << 16)  # escaped quotes and line breaks, inside the field
    size = 100 * 1024 * 1024 - 1024

    async def body() -> AsyncIterator[bytes]:
        yield head + opening
        sent = len(head) + len(opening)
        while sent + len(filler) <= size:
            yield filler
            sent += len(filler)

    peak = before
    try:
        async with aiohttp.ClientSession(base_url=stack.api_url, headers=bearer(token)) as http:

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, gateway.memory_info().rss)
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            try:
                async with http.post(
                    "/api/v1/database/import",
                    params={"table": customers},
                    data=body(),
                    headers={"Content-Type": "text/csv"},
                    timeout=aiohttp.ClientTimeout(total=120),
                ) as answer:
                    problem = await answer.json(content_type=None)
            except aiohttp.ClientError:
                pytest.fail("the gateway closed the connection instead of answering 422")
            finally:
                watcher.cancel()
        assert answer.status == 422, problem
        assert problem["type"] == "/problems/field-too-long"
        assert problem["line"] == line
        assert peak - before < 100 * 1024 * 1024, (before, peak)
    finally:
        stack.stop()


async def test_downloads_read_slowly_hold_no_connection(
    database_url: str,
    bootstrap: str,
    make_key: MakeKey,
    customers: str,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    """Twelve clients start a large export and then read nothing (more than the pool's 10
    connections): an admin's requests still answer at once, and each export is whole
    once its client reads."""
    await db.execute(
        f"INSERT INTO {customers} (id, name, email, signup_date, active, notes)"
        " SELECT i, 'name ' || i, 'e' || i || '@example.com', date '2024-01-01', true,"
        " repeat('x', 200) FROM generate_series(1, 40000) AS i"
    )
    stack = await gateway_process(tmp_path, database_url, bootstrap)
    admin = await make_key("admin", requests_per_minute=1000)
    try:
        async with aiohttp.ClientSession(
            base_url=stack.api_url,
            headers=bearer(admin),
            connector=aiohttp.TCPConnector(limit=0),
            read_bufsize=1024,
        ) as http:
            stalled = []
            for _ in range(12):
                answer = await http.get(
                    "/api/v1/database/export",
                    params={"table": customers},
                    timeout=aiohttp.ClientTimeout(total=60),
                )
                assert answer.status == 200
                stalled.append(answer)  # its body waits, unread
            started = time.monotonic()
            async with http.post(
                "/api/v1/keys",
                json={"name": "made while others stall", "role": "viewer"},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as created:
                assert created.status == 201
            assert time.monotonic() - started < 2
            for answer in stalled:
                body = await answer.read()
                assert body.count(b"\r\n") == 40001  # the header and every row
                answer.release()
    finally:
        stack.stop()
