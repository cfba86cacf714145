"""The broker dies mid-import and comes back empty (tansu keeps nothing in memory; a real
Kafka can lose acknowledged events too). PostgreSQL holds the truth: the consumers rebuild
themselves and the topics, and the reconciler re-drives what the broker lost."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import ROWS, SERVICES_ALL, Scenario


@pytest.mark.parametrize("order", ["broker_only", "broker_then_services", "services_then_broker"])
async def test_broker_killed_mid_import(scenario: Scenario, order: str) -> None:
    import_id = await scenario.upload()
    await scenario.wait_loaded(2_000)
    scenario.kill_broker()
    assert await scenario.rows_loaded() < ROWS
    await asyncio.sleep(2)
    if order == "broker_only":  # the services stay up and reconnect by themselves
        scenario.broker.start()
    elif order == "broker_then_services":
        scenario.broker.start()
        for name in SERVICES_ALL:
            scenario.kill(name)
        scenario.restart(*SERVICES_ALL)
    else:
        for name in SERVICES_ALL:
            scenario.kill(name)
        scenario.restart(*SERVICES_ALL)  # they wait for the broker
        await asyncio.sleep(3)
        scenario.broker.start()
    await scenario.assert_true_final_state(import_id)
    await scenario.wait_ready(*SERVICES_ALL)


async def test_broker_down_during_the_upload(scenario: Scenario) -> None:
    scenario.kill_broker()
    import_id = await scenario.upload()  # accepted: the chunks wait in the outbox
    await asyncio.sleep(3)
    assert await scenario.rows_loaded() == 0
    scenario.broker.start()
    await scenario.assert_true_final_state(import_id)
