"""Any service can be killed at any moment: after a restart the import finishes with every
row loaded exactly once (ledger, inbox, offsets committed after effects)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import wait_final
from tidegate import client
from tidegate.keys import create_key
from tidegate.sample_data import TABLE_SQL, write_file
from tidegate.stack import Stack


@pytest.mark.parametrize("victim", ["loader", "auditor", "validator"])
async def test_a_killed_service_resumes_and_loads_every_row_once(
    victim: str,
    database_url: str,
    bootstrap: str,
    db: asyncpg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("TIDEGATE_MAX_RECORDS_PER_IMPORT", "100000")
    table = f"public.crash_{victim}"
    await db.execute(TABLE_SQL.format(table=table))
    path = write_file(tmp_path / "rows.csv", 40_000)
    stack = Stack(tmp_path)
    await asyncio.to_thread(stack.start)
    try:
        key = await create_key(database_url, "crash test", "data_manager")
        async with client.session(key) as session:
            accepted = await client.upload(
                session, stack.api_url, path, table, {"chunk_size": "500"}, progress=False
            )
        # Kill the victim without warning once loading is under way.
        for _ in range(600):
            loaded = await db.fetchval(f"SELECT count(*) FROM {table}")
            if loaded >= 5_000:
                break
            await asyncio.sleep(0.05)
        os.kill(stack.processes[victim].pid, signal.SIGKILL)
        stack.processes[victim].wait()
        assert await db.fetchval(f"SELECT count(*) FROM {table}") < 40_000
        stack.spawn(victim)
        await asyncio.to_thread(stack.wait_healthy, (victim,))
        final = await wait_final(db, accepted["id"], seconds=150)
    finally:
        await asyncio.to_thread(stack.stop)
    assert (final["status"], final["loaded_rows"], final["failed_rows"]) == ("completed", 40_000, 0)
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 40_000
    assert await db.fetchval(f"SELECT count(DISTINCT id) FROM {table}") == 40_000
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.chunk_ledger WHERE import_id = $1::uuid", accepted["id"]
        )
        == 80
    )
