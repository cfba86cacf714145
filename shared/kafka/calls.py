"""Calls to the broker: every one has a timeout (`within`, the one home of it), and a client
started before the broker is up waits for it (`until_broker_answers`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiokafka.errors import KafkaConnectionError

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
FETCH_WAIT_MS = 50  # an empty fetch returns after this: events move on within it
BROKER_CALL_SECONDS = 15.0


T = TypeVar("T")
_ABANDONED: set[asyncio.Future[Any]] = set()  # kept referenced until they end


async def within(aw: Awaitable[T], seconds: float, what: str) -> T:
    """`aw`'s result if it comes within `seconds`; else it is cancelled and left behind and
    TimeoutError raised. Unlike `asyncio.wait_for`, this never waits for the cancellation
    itself: a Kafka client call that swallows it cannot hold the caller forever."""
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)
    raise TimeoutError(f"{what}: no answer in {seconds:.0f} s")


async def until_broker_answers(start: Callable[[], Awaitable[None]], what: str) -> None:
    """Start a client, waiting for the broker for up to a minute (it may start after us)."""
    delay = 0.1
    deadline = time.monotonic() + 60
    while True:
        try:
            await start()
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            log.warning("broker not reachable yet", client=what, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            return
