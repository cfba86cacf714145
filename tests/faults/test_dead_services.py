"""Any one service SIGKILLed mid-import (a worker, or the gateway whose relay was
publishing the outbox) and started again: the import finishes, every row once."""

from __future__ import annotations

import pytest

from tests.faults.conftest import ROWS, Scenario


@pytest.mark.parametrize("victim", ["gateway", "validator", "loader", "auditor"])
async def test_a_service_killed_mid_import(scenario: Scenario, victim: str) -> None:
    import_id = await scenario.upload()
    await scenario.wait_loaded(1_500)
    scenario.kill(victim)
    assert await scenario.rows_loaded() < ROWS
    scenario.restart(victim)
    await scenario.wait_ready(victim)
    await scenario.assert_true_final_state(import_id)
