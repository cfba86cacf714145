"""A file over the record limit (issue 21): `tidegate import --split` imports it in parts
within the key's limit, survives an interruption without importing a part twice, and
reports failed lines numbered as in the original file; an admin may raise one key's limit."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from tests.conftest import MakeKey, Running, bearer
from tests.e2e.test_cli_admin import _cli
from tests.e2e.test_import_pipeline import post_csv

HEADER = "id,name,note\n"


def _file(tmp_path: Path, rows: int) -> tuple[Path, list[int]]:
    """`rows` records, some with quoted newlines; every 7th has a bad id. Returns the path
    and the file lines of the bad records."""
    lines, bad, line = [HEADER], [], 2
    for i in range(1, rows + 1):
        ident = f"x{i}" if i % 7 == 0 else str(i)
        note = f'"two\nlines {i}"' if i % 4 == 0 else f"note {i}"
        if i % 7 == 0:
            bad.append(line)
        lines.append(f"{ident},Name {i},{note}\n")
        line += 2 if i % 4 == 0 else 1
    path = tmp_path / "big.csv"
    path.write_text("".join(lines))
    return path, bad


async def _imports_of(db: asyncpg.Connection, table: str) -> list[uuid.UUID]:
    return [
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM tidegate.imports WHERE target_table = $1 ORDER BY created_at", table
        )
    ]


async def test_split_imports_parts_once_through_an_interruption(
    services: Running, make_key: MakeKey, db: asyncpg.Connection, tmp_path: Path
) -> None:
    table = f"public.split_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text, note text)")
    key = await make_key("data_manager", max_records_per_import=10, requests_per_minute=10_000)
    path, bad = _file(tmp_path, 45)
    args = ("import", str(path), "--table", table, "--split", "--api", services.api)

    # Interrupted once the first part is in: killed, as by Ctrl-C or a lost terminal.
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidegate.cli", *args,
        env={"TIDEGATE_API_KEY": key, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        if await _imports_of(db, table):
            break
        await asyncio.sleep(0.05)
    first.kill()
    await first.wait()
    started = await _imports_of(db, table)
    assert 1 <= len(started) < 5

    code, out, err = await _cli(*args, key=key)
    assert code == 1, err  # some rows failed
    report = json.loads(out[out.index("{") :])
    parts = report["parts"]
    assert [p["records"] for p in parts] == [10, 10, 10, 10, 5]
    assert [p["id"] for p in parts][: len(started)] == [str(i) for i in started]
    assert await _imports_of(db, table) == [uuid.UUID(p["id"]) for p in parts]  # none twice
    assert (report["records"], report["loaded"], report["failed"]) == (45, 39, 6)
    assert sorted(e["line"] for e in report["failed_lines"]) == bad
    assert all(e["code"] == "invalid_integer" for e in report["failed_lines"])
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 39
    assert await db.fetchval(f"SELECT note FROM {table} WHERE id = 4") == "two\nlines 4"
    assert "big.csv" in err  # one progress bar over the whole file

    code, out, _ = await _cli(*args, key=key)  # again: every part answered by its import
    assert [p["id"] for p in json.loads(out[out.index("{") :])["parts"]] == [p["id"] for p in parts]
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 39


async def test_an_admin_may_raise_one_keys_record_limit(
    services: Running, make_key: MakeKey, db: asyncpg.Connection
) -> None:
    table = f"public.limit_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY)")
    body = "id\n" + "".join(f"{i}\n" for i in range(1, 12))
    small = await make_key("data_manager", max_records_per_import=10)
    large = await make_key("data_manager", max_records_per_import=100)
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(small)) as http:
        status, problem, _ = await post_csv(http, table, body)
        assert (status, problem["max_records"]) == (422, 10)
        async with http.get("/api/v1/me") as response:
            assert (await response.json())["max_records_per_import"] == 10
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(large)) as http:
        status, _, _ = await post_csv(http, table, body)
        assert status == 202
