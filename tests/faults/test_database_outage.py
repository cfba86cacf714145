"""PostgreSQL stops for 60 s mid-import (killed as a crash would, then started again).
Every service retries what it was doing, an API client is told 503 with Retry-After, and
the import finishes with every row exactly once, resuming from its last checkpoint: no
chunk committed before the crash is loaded again."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from tests.faults.conftest import CHUNK_SIZE, CHUNKS, ROWS, SERVICES_ALL, Scenario
from tidegate import client

OUTAGE_SECONDS = 60


@pytest.mark.parametrize("stop_at", [500, 4_500, 8_500])
async def test_postgres_stopped_for_a_minute(scenario: Scenario, stop_at: int) -> None:
    import_id = await scenario.upload()
    await scenario.wait_loaded(stop_at)
    checkpoints = await _checkpoints(scenario, import_id)
    scenario.postgres.halt()
    # An API client during the outage: 503 with Retry-After, never 500.
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {scenario.key}"}
    ) as session:
        async with session.post(
            f"{scenario.stack.api_url}/api/v1/database/import",
            params={"table": scenario.table},
            data=scenario.source.read_bytes(),
            headers={"Content-Type": "text/csv"},
        ) as answer:
            problem = await answer.json(content_type=None)
            assert answer.status == 503, problem
            assert problem["type"] == "/problems/service-unavailable"
            assert int(answer.headers["Retry-After"]) > 0
        async with session.get(f"{scenario.stack.api_url}/readyz") as answer:
            assert answer.status == 503
            assert (await answer.json())["checks"]["database"]["ok"] is False
    await asyncio.sleep(OUTAGE_SECONDS)
    scenario.postgres.resume()
    await scenario.reconnect_db()
    assert await scenario.rows_loaded() < ROWS or stop_at == 8_500
    await scenario.assert_true_final_state(import_id)
    after = await _checkpoints(scenario, import_id)
    assert checkpoints and {seq: after[seq] for seq in checkpoints} == checkpoints
    async with client.session(scenario.key) as session:
        resource = await client.call(
            session, "GET", f"{scenario.stack.api_url}/api/v1/database/imports/{import_id}"
        )
    assert resource["recovery"]["checkpoint"]["chunks"] == CHUNKS
    assert resource["recovery"]["checkpoint"]["rows"] == ROWS
    assert resource["options"]["checkpoint_interval"] == CHUNK_SIZE
    await scenario.wait_ready(*SERVICES_ALL)


async def _checkpoints(scenario: Scenario, import_id: str) -> dict[int, object]:
    """The chunks committed so far, with when each was committed."""
    rows = await scenario.db.fetch(
        "SELECT seq, loaded_at FROM tidegate.chunk_ledger WHERE import_id = $1",
        uuid.UUID(import_id),
    )
    return {r["seq"]: r["loaded_at"] for r in rows}
