"""`sync status` while the loader is stopped: the loader shows as down, and its consumer
group's lag — measured at the broker, since no loader is there to report it — grows while
the validator keeps producing; after a restart everything is healthy again."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.test_cli_admin import _cli
from tests.faults.conftest import CHUNKS, Scenario
from tidegate import client
from tidegate.keys import create_key

LOADER_GROUP, VALIDATED = "tidegate-loader", "tidegate.chunk.validated"


async def _status(scenario: Scenario) -> dict[str, Any]:
    async with client.session(scenario.watcher) as session:
        return await client.call(session, "GET", f"{scenario.stack.api_url}/api/v1/status")


async def _until(scenario: Scenario, healthy: bool, seconds: float = 60) -> dict[str, Any]:
    for _ in range(int(seconds / 0.5)):
        status = await _status(scenario)
        if status["healthy"] is healthy:
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"never healthy={healthy}: {status}")


async def test_a_stopped_loader_is_down_and_its_lag_grows(scenario: Scenario) -> None:
    scenario.watcher = await create_key(
        scenario.postgres.url, "status watcher", "viewer", requests_per_minute=100_000
    )
    await _until(scenario, healthy=True)
    scenario.kill("loader")
    import_id = await scenario.upload()
    lags: list[int] = []
    for _ in range(120):
        status = await _status(scenario)
        lags.append(status["consumer_lag"]["groups"][LOADER_GROUP][VALIDATED])
        if "loader" in status["services_down"] and lags[-1] == CHUNKS:
            break
        await asyncio.sleep(0.5)
    assert status["healthy"] is False and status["services_down"] == ["loader"], status
    # It grows to every chunk of the import, never back (the validator may be done with
    # them all before the first look).
    assert sorted(lags) == lags and lags[-1] == CHUNKS, lags
    await asyncio.sleep(3 * 5)  # three stall times: the queued chunks are not re-driven
    status = await _status(scenario)
    assert status["consumer_lag"]["groups"][LOADER_GROUP][VALIDATED] == CHUNKS
    assert [i for i in status["imports_running"] if i["id"] == import_id]
    code, out, _ = await _cli(
        "sync", "status", "--api", scenario.stack.api_url, key=scenario.watcher
    )
    assert code == 1
    assert "down: loader" in out and "LOST loader@" in out

    scenario.restart("loader")
    await scenario.wait_ready("loader")
    await scenario.assert_true_final_state(import_id)
    healthy = await _until(scenario, healthy=True)
    assert healthy["consumer_lag"]["groups"][LOADER_GROUP][VALIDATED] == 0
