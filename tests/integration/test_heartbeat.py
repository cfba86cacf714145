"""Service instances in `sync status` (issue 21): an instance that stops cleanly takes
itself off the list at once; one that vanished is shown as lost for LOST_FOR_SECONDS, then
forgotten; "healthy" needs an instance up of every service."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import msgspec
import pytest
from aiohttp import web

from services.gateway.troubleshooting.status import _instances
from shared.config import Settings
from shared.service import CONSUMERS, LOST_FOR_SECONDS, POOL, SETTINGS, heartbeat


async def test_a_clean_stop_withdraws_the_instance(
    pool: asyncpg.Pool, db: asyncpg.Connection, settings_for: Callable[[str], Settings]
) -> None:
    name = f"beating-{uuid.uuid4().hex[:8]}"
    settings = msgspec.structs.replace(settings_for("validator"), service_name=name)
    app = web.Application()
    app[POOL], app[SETTINGS], app[CONSUMERS] = pool, settings, []
    beating = heartbeat(app)
    await anext(beating)  # started: its first beat is written at once
    mine = "SELECT count(*) FROM tidegate.service_heartbeats WHERE service = $1"
    for _ in range(50):
        if await db.fetchval(mine, name):
            break
        await asyncio.sleep(0.05)
    assert await db.fetchval(mine, name) == 1
    with pytest.raises(StopAsyncIteration):
        await anext(beating)  # the cleanup: a clean stop
    assert await db.fetchval(mine, name) == 0


async def test_a_vanished_instance_is_lost_for_a_while_then_forgotten(
    db: asyncpg.Connection,
) -> None:
    await db.execute(
        "INSERT INTO tidegate.service_heartbeats (instance, service, version, host, pid,"
        " started_at, last_seen) VALUES"
        " ('loader@ghost:1', 'loader', 'x', 'ghost', 1, now() - interval '2 hours',"
        "  now() - interval '1 minute'),"
        " ('loader@ghost:2', 'loader', 'x', 'ghost', 2, now() - interval '2 hours',"
        "  now() - make_interval(secs => $1 + 60))",
        LOST_FOR_SECONDS,
    )
    try:
        listed = {i.instance: i for i in await _instances(db, heartbeat_seconds=5)}
        assert listed["loader@ghost:1"].state == "lost" and not listed["loader@ghost:1"].up
        assert "loader@ghost:2" not in listed
    finally:
        await db.execute("DELETE FROM tidegate.service_heartbeats WHERE host = 'ghost'")
