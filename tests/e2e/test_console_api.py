"""The API the console stands on: the tables a key may import into, the live stream of
import changes, columns the table lacks left out on request, and empty spreadsheet rows."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import (
    MakeKey,
    Running,
    bearer,
    gateway_process,
    holding_id,
    unfinished_import,
    wait_final,
)
from tests.e2e.test_import_pipeline import post_csv

ROW = "1,Ann,ann@example.com,Oslo,2024-01-02,10.50,true,,note\n"
HEADER = "id,name,email,city,signup_date,balance,active,last_seen,notes"


async def test_tables_list_what_a_file_must_hold(
    services: Running, make_key: MakeKey, customers: str
) -> None:
    other = customers.replace("customers_", "elsewhere_")
    token = await make_key("data_manager", tables=[customers])
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as session:
        async with session.get("/api/v1/tables") as answer:
            assert answer.status == 200
            body = await answer.json()
    names = [t["name"] for t in body["items"]]
    assert names == [customers]  # only the key's tables
    assert other not in names
    table = body["items"][0]
    columns = {c["name"]: c for c in table["columns"]}
    assert list(columns) == HEADER.split(",")
    assert (columns["email"]["required"], columns["email"]["type"]) == (
        True,
        "character varying(120)",
    )
    assert columns["city"]["required"] is False
    assert table["primary_key"] == ["id"]
    assert table["unique_keys"] == [["id"], ["email"]]
    assert table["rule_file_error"] is None


async def test_extra_columns_are_refused_unless_ignored(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    body = f"{HEADER},Shoe size,notes2\n" + ROW.replace("note\n", "note,44,x\n")
    status, answer, _ = await post_csv(http, customers, body)
    assert status == 422
    assert answer["unexpected"] == ["Shoe size", "notes2"]

    status, answer, _ = await post_csv(http, customers, body, extra_columns="maybe")
    assert (status, answer["parameter"]) == (400, "extra_columns")

    status, answer, _ = await post_csv(http, customers, body, extra_columns="ignore")
    assert status == 202, answer
    assert answer["ignored_columns"] == ["Shoe size", "notes2"]
    assert answer["columns"] == HEADER.split(",")
    final = await wait_final(db, answer["id"])
    assert (final["status"], final["loaded_rows"]) == ("completed", 1)
    stored = await db.fetchrow(f"SELECT name, notes FROM {customers} WHERE id = 1")
    assert stored is not None
    assert tuple(stored) == ("Ann", "note")


async def test_an_ignored_column_in_the_middle_and_a_short_row(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    """The ignored field is cut from each row; a row with too many fields still fails."""
    header = "id,junk,name,email,signup_date,active"
    body = (
        f"{header}\n1,x,Ann,ann@example.com,2024-01-02,true\n"
        "2,y,Bob,bob@example.com,2024-01-02,true,extra\n"
    )
    status, answer, _ = await post_csv(http, customers, body, extra_columns="ignore")
    assert status == 202, answer
    final = await wait_final(db, answer["id"])
    assert (final["loaded_rows"], final["failed_rows"]) == (1, 1)
    async with http.get(f"/api/v1/database/imports/{answer['id']}/errors") as response:
        errors = (await response.json())["items"]
    assert [(e["line"], e["code"]) for e in errors] == [(3, "wrong_field_count")]
    assert await db.fetchval(f"SELECT name FROM {customers} WHERE id = 1") == "Ann"


async def test_rows_of_empty_fields_are_passed_over_like_blank_lines(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    body = f"{HEADER}\n,,,,,,,,\n{ROW},,,,,,,,\n\n,,,,,,,,\n" + ROW.replace("1,Ann,ann", "2,Bo,bo")
    status, answer, _ = await post_csv(http, customers, body)
    assert status == 202, answer
    assert answer["counts"]["empty_rows"] == 3
    assert answer["counts"]["file_rows"] == 2
    final = await wait_final(db, answer["id"])
    assert (final["status"], final["loaded_rows"], final["failed_rows"]) == ("completed", 2, 0)
    # Line numbers still count every line of the file.
    async with http.get(f"/api/v1/database/imports/{answer['id']}/errors") as response:
        assert (await response.json())["total"] == 0


async def _events(response: aiohttp.ClientResponse, until: Any) -> list[tuple[str, dict[str, Any]]]:
    """SSE events until `until(events)` holds."""
    seen: list[tuple[str, dict[str, Any]]] = []
    kind, data = "message", list[str]()
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                seen.append((kind, json.loads("\n".join(data))))
                if until(seen):
                    return seen
            kind, data = "message", list[str]()
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return seen


async def test_the_stream_sends_each_change_of_an_import_live(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    rows = "".join(ROW.replace("1,Ann,ann", f"{i},A{i},a{i}") for i in range(1, 4001))
    async with http.get("/api/v1/database/imports/stream") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        # The chunk bringing id 2000 waits on this uncommitted row: certainly seen half-way.
        async with holding_id(db, customers, 2000):
            status, answer, _ = await post_csv(
                http, customers, HEADER + "\n" + rows, chunk_size="40"
            )
            assert status == 202
            mine = answer["id"]

            def halfway(seen: list[tuple[str, dict[str, Any]]]) -> bool:
                return any(d["id"] == mine and 0 < (d["progress"] or 0) < 1 for _, d in seen)

            seen = await asyncio.wait_for(_events(stream, halfway), 60)

        def finished(seen: list[tuple[str, dict[str, Any]]]) -> bool:
            return any(d["id"] == mine and d["status"] == "completed" for _, d in seen)

        seen += await asyncio.wait_for(_events(stream, finished), 60)
    states = [d for kind, d in seen if kind == "import" and d["id"] == mine]
    assert states[-1]["counts"]["loaded"] == 4000
    progress = [s["progress"] or 0 for s in states]
    assert progress == sorted(progress)  # never backwards
    assert progress[-1] == 1


async def test_the_stream_resumes_from_last_event_id_and_filters(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    _, first, _ = await post_csv(http, customers, f"{HEADER}\n{ROW}")
    final = await wait_final(db, first["id"])
    _, second, _ = await post_csv(
        http, customers, f"{HEADER}\n" + ROW.replace("1,Ann,ann", "2,Bo,bo")
    )
    await wait_final(db, second["id"])
    since = (final["created_at"]).isoformat()
    params = {"import_id": second["id"]}
    async with http.get(
        "/api/v1/database/imports/stream", params=params, headers={"Last-Event-ID": since}
    ) as stream:
        seen = await asyncio.wait_for(
            _events(stream, lambda s: any(d["status"] == "completed" for _, d in s)), 30
        )
    assert {d["id"] for _, d in seen} == {second["id"]}

    async with http.get("/api/v1/database/imports/stream", params={"since": "yesterday"}) as bad:
        assert (bad.status, (await bad.json())["parameter"]) == (400, "since")


@pytest.mark.parametrize("path", ["/console", "/console/", "/console/js/main.js"])
async def test_the_console_files_are_public_and_locked_down(services: Running, path: str) -> None:
    async with aiohttp.ClientSession(base_url=services.api) as anonymous:
        async with anonymous.get(path) as answer:
            assert answer.status == 200
            assert answer.url.path in ("/console/", path)
            csp = answer.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert answer.headers["X-Frame-Options"] == "DENY"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/console/../pyproject.toml", "/console/%2e%2e/routes.py", "/console/nope.js"]
)
async def test_nothing_outside_the_console_files_is_served(services: Running, path: str) -> None:
    async with aiohttp.ClientSession(base_url=services.api) as anonymous:
        async with anonymous.get(path) as answer:
            assert answer.status in (401, 404)  # /console/../x normalises to /x: the API's
            assert "tool.setuptools" not in await answer.text()


async def test_an_open_stream_ends_when_the_gateway_stops(
    database_url: str, bootstrap: str, make_key: MakeKey, tmp_path: Path
) -> None:
    """A console left open must not hold up a graceful stop: the stream ends (a clean end
    of the body, the client reconnects elsewhere) and the gateway exits 0, well within its
    30-second shutdown timeout, which is what an endless handler would cost."""
    stack = await gateway_process(tmp_path, database_url, bootstrap)
    token = await make_key("viewer")
    async with aiohttp.ClientSession(base_url=stack.api_url, headers=bearer(token)) as http:
        async with http.get("/api/v1/database/imports/stream") as stream:
            assert await stream.content.readline() == b"retry: 2000\n"
            started = time.monotonic()
            stopping = asyncio.create_task(asyncio.to_thread(stack.stop))
            rest = await asyncio.wait_for(stream.content.read(), 20)  # to the end of the body
            codes = await stopping
    assert rest == b"\n"  # nothing after the retry line but its blank line, then the end
    assert codes == {"gateway": 0}
    assert time.monotonic() - started < 20


async def test_an_unfinished_imports_timeline_stream_ends_when_the_gateway_stops(
    database_url: str,
    bootstrap: str,
    make_key: MakeKey,
    db: asyncpg.Connection,
    customers: str,
    tmp_path: Path,
) -> None:
    """The timeline's stream (which ends by itself only when its import finishes) ends
    too when the gateway stops, without the `end` event: the import has not finished."""
    stuck = await unfinished_import(db, customers)
    stack = await gateway_process(tmp_path, database_url, bootstrap)
    headers = {**bearer(await make_key("admin")), "Accept": "text/event-stream"}
    async with aiohttp.ClientSession(base_url=stack.api_url, headers=headers) as http:
        async with http.get(f"/api/v1/database/imports/{stuck}/events") as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            stopping = asyncio.create_task(asyncio.to_thread(stack.stop))
            rest = await asyncio.wait_for(stream.content.read(), 20)  # to the end of the body
            codes = await stopping
    assert b"event: end" not in rest
    assert codes == {"gateway": 0}
