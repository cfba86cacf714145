"""Live streams (issue 19, item 3): a revoked key's streams end within seconds, streams per
key are capped, one watcher per gateway serves every stream, and a change committed long
after its transaction began is still sent."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import asyncpg
from prometheus_client import REGISTRY

from tests.conftest import MakeKey, Running, bearer, unfinished_import

STREAM = "/api/v1/database/imports/stream"


async def _frames(stream: aiohttp.ClientResponse) -> Any:
    """(event, id, data) of each frame, as they arrive."""
    kind, ident, data = "message", "", ""
    while line := await stream.content.readline():
        text = line.decode().rstrip("\n")
        if text == "":
            if data:
                yield kind, ident, json.loads(data)
            kind, ident, data = "message", "", ""
        elif text.startswith("event: "):
            kind = text[7:]
        elif text.startswith("id: "):
            ident = text[4:]
        elif text.startswith("data: "):
            data = text[6:]


async def test_a_revoked_keys_stream_ends_within_seconds(
    services: Running, make_key: MakeKey, admin_token: str
) -> None:
    token = await make_key("viewer", name="soon revoked")
    async with aiohttp.ClientSession(base_url=services.api) as http:
        async with http.get("/api/v1/me", headers=bearer(token)) as me:
            key_id = (await me.json())["id"]
        async with http.get(STREAM, headers=bearer(token)) as stream:
            assert stream.status == 200
            async with http.delete(
                f"/api/v1/keys/{key_id}", headers=bearer(admin_token)
            ) as revoked:
                assert revoked.status == 200
            ended = [f async for f in _within(_frames(stream), 15)]
        assert ended[-1][0] == "end"
        assert "no longer valid" in ended[-1][2]
        async with http.get(STREAM, headers=bearer(token)) as again:
            assert again.status == 401


async def _within(frames: Any, seconds: float) -> Any:
    """The frames until the stream ends, failing if it has not within `seconds`."""
    async with asyncio.timeout(seconds):
        async for frame in frames:
            yield frame


async def test_streams_per_key_are_capped(services: Running, make_key: MakeKey) -> None:
    """The default allows 5 open streams per key and gateway; the 6th is 429, and once one
    closes another may open."""
    token = await make_key("viewer", name="many tabs")
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as http:
        opened = [await http.get(STREAM) for _ in range(5)]
        try:
            assert [s.status for s in opened] == [200] * 5
            async with http.get(STREAM) as sixth:
                problem = await sixth.json(content_type=None)
                assert sixth.status == 429
                assert problem["type"] == "/problems/too-many-streams"
            opened.pop().close()
            for _ in range(50):  # the gateway notices the closed stream
                async with http.get("/api/v1/me") as _:
                    pass
                another = await http.get(STREAM)
                if another.status == 200:
                    opened.append(another)
                    break
                another.release()
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("a closed stream's place was never given back")
        finally:
            for stream in opened:
                stream.close()


def _polls() -> float:
    return REGISTRY.get_sample_value("tidegate_gateway_stream_polls_total") or 0.0


async def test_one_watcher_serves_every_stream(services: Running, make_key: MakeKey) -> None:
    """Twenty streams open for three seconds: the imports table is read about twice a
    second in all, not twice a second per stream."""
    tokens = [await make_key("viewer", name=f"tab {i}") for i in range(4)]
    async with aiohttp.ClientSession(base_url=services.api) as http:
        opened = [
            await http.get(STREAM, headers=bearer(token)) for token in tokens for _ in range(5)
        ]
        try:
            assert [s.status for s in opened] == [200] * 20
            before = _polls()
            await asyncio.sleep(3)
            looks = _polls() - before
        finally:
            for stream in opened:
                stream.close()
    assert 3 <= looks <= 9  # one watcher at 0.5 s, not 20 streams times 6 = 120


async def test_a_change_committed_long_after_it_began_is_sent(
    services: Running, make_key: MakeKey, db: asyncpg.Connection, customers: str, database_url: str
) -> None:
    """An import row changed in a transaction that commits 15 s after it began (as a
    rollback of a large import does), while other imports change every second: the change
    is stamped with its transaction's start, long before the changes sent meanwhile, and
    is still sent (a window of 10 s after the latest change sent missed it)."""
    stuck, busy = [uuid.UUID(await unfinished_import(db, customers)) for _ in range(2)]
    token = await make_key("admin", name="watching a slow commit")
    writer = await asyncpg.connect(database_url)
    try:
        async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as http:
            async with http.get(STREAM) as stream:
                assert stream.status == 200
                transaction = writer.transaction()
                await transaction.start()
                await writer.execute(
                    "UPDATE tidegate.imports SET status = 'failed', finished_at = now(),"
                    " error = 'slow commit', version = version + 1, updated_at = now()"
                    " WHERE id = $1",
                    stuck,
                )
                for _ in range(15):  # meanwhile, another import moves on
                    await db.execute(
                        "UPDATE tidegate.imports SET version = version + 1, updated_at = now()"
                        " WHERE id = $1",
                        busy,
                    )
                    await asyncio.sleep(1)
                await transaction.commit()
                found = None
                async with asyncio.timeout(10):
                    async for kind, _, data in _frames(stream):
                        if kind == "import" and data["id"] == str(stuck):
                            found = data
                            if data["status"] == "failed":
                                break
        assert found is not None
        assert (found["status"], found["error"]) == ("failed", "slow commit")
    finally:
        await writer.close()
        await db.execute(
            "UPDATE tidegate.imports SET status = 'failed', finished_at = now() WHERE id = $1",
            busy,
        )


async def test_a_stream_sends_only_what_changes_after_it_opened(
    services: Running, make_key: MakeKey, db: asyncpg.Connection, customers: str
) -> None:
    """Changes committed before a stream opened (and before `since`) are not news: opened
    without a resume point, it sends only what changes from then on, however old the
    watcher's cursor (a console listing imports prepended old ones)."""
    before = uuid.UUID(await unfinished_import(db, customers))
    await db.execute("UPDATE tidegate.imports SET version = version + 1 WHERE id = $1", before)
    after = uuid.UUID(await unfinished_import(db, customers))
    token = await make_key("admin", name="only news")
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as http:
        async with http.get(STREAM) as stream:
            await asyncio.sleep(1)  # the watcher looks at least once meanwhile
            await db.execute(
                "UPDATE tidegate.imports SET status = 'failed', finished_at = now(),"
                " version = version + 1 WHERE id = $1",
                after,
            )
            seen = []
            async with asyncio.timeout(10):
                async for kind, _, data in _frames(stream):
                    if kind == "import":
                        seen.append((data["id"], data["status"]))
                    if (str(after), "failed") in seen:
                        break
    assert str(before) not in {i for i, _ in seen}, seen
    for import_id in (before, after):
        await db.execute(
            "UPDATE tidegate.imports SET status = 'failed', finished_at = now()"
            " WHERE id = $1 AND finished_at IS NULL",
            import_id,
        )
