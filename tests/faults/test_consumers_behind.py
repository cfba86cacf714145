"""Consumers that are merely behind are waited for, not re-driven (issue 19, item 7): a
worker paused mid-import (SIGSTOP: alive, silent, its group's records pile up) for three
stall times is not handed the import's chunks again; resumed, it finishes the import."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid

import pytest

from tests.faults.conftest import Scenario


@pytest.mark.parametrize("paused", ["validator", "loader"])
async def test_a_paused_consumer_is_waited_for_not_redriven(
    scenario: Scenario, paused: str
) -> None:
    import_id = await scenario.upload()
    await scenario.wait_loaded(1_000)
    pid = scenario.stack.processes[paused].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(15)  # three times the stack's stall time (5 s)
    finally:
        os.kill(pid, signal.SIGCONT)
    await scenario.assert_true_final_state(import_id)
    redrives = await scenario.db.fetch(
        "SELECT detail FROM tidegate.import_journal WHERE import_id = $1 AND kind = 'redriven'",
        uuid.UUID(import_id),
    )
    resent = [json.loads(r["detail"])["resent"] for r in redrives]
    assert all(chunks == [] for chunks in resent), resent  # nothing queued was sent again
