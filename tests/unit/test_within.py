"""`shared.kafka.within`: a call that swallows its cancellation cannot hold the caller."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.kafka.calls import within


async def _stubborn(release: asyncio.Event) -> str:
    """Ignores cancellation until released, as some client calls do."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue
    return "done"


async def test_a_stubborn_call_is_left_behind_after_its_time() -> None:
    release = asyncio.Event()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="stubborn: no answer"):
        await within(_stubborn(release), 0.2, "stubborn")
    assert time.monotonic() - started < 1.0  # asyncio.wait_for would still be waiting
    release.set()  # let the abandoned task end
    await asyncio.sleep(0)
    assert await within(asyncio.sleep(0, result="fine"), 1.0, "quick") == "fine"
