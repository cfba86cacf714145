"""`tidegate import` sends a file as a resumable upload: a connection cut in the middle is
resumed by itself, and `--resume` goes on with an upload whose process died."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg

from tests.conftest import MakeKey, Running, bearer, table_rows, typed, wait_final
from tests.e2e.test_cli_admin import _cli
from tests.e2e.test_import_pipeline import as_csv
from tidegate import client, resumable
from tidegate.sample_data import rows


@contextlib.asynccontextmanager
async def cutting_proxy(target: str, cut_after: int) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP proxy to `target` (http://host:port) that drops the first connection that
    sends more than `cut_after` bytes to the server, after that many; its URL, and how many
    connections it dropped."""
    host, port = target.removeprefix("http://").split(":")
    dropped: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int) -> None:
        sent = 0
        try:
            while data := await reader.read(65536):
                if limit and not dropped and sent + len(data) > limit:
                    writer.write(data[: limit - sent])
                    dropped.append(limit)
                    raise ConnectionResetError
                sent += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        upstream = asyncio.ensure_future(pipe(reader, up_writer, cut_after))
        await pipe(up_reader, writer, 0)
        upstream.cancel()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", dropped


async def test_a_cut_connection_is_resumed_by_itself(
    services: Running, db: asyncpg.Connection, customers: str, admin_token: str, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_text(as_csv(list(rows(6_000))))
    size = source.stat().st_size
    remembered = resumable.Remembered(tmp_path / "uploads.json")
    async with (
        cutting_proxy(services.api, cut_after=size // 2) as (api, dropped),
        client.session(admin_token) as session,
    ):
        accepted = await resumable.upload(
            session, api, source, customers, {"chunk_size": "500"}, progress=False,
            remembered=remembered, part_bytes=size // 3,
        )  # fmt: skip
    assert dropped == [size // 2]  # the connection was cut once, mid-PATCH
    final = await wait_final(db, accepted["id"])
    assert final["status"] == "completed"
    assert await table_rows(db, customers) == [typed(r) for r in rows(6_000)]
    assert remembered.get(remembered.key(api, source, customers)) is None


async def test_resume_goes_on_with_the_upload_of_a_process_that_died(
    services: Running, db: asyncpg.Connection, customers: str, make_key: MakeKey, tmp_path: Path
) -> None:
    key = await make_key("admin", concurrent_imports=10, requests_per_minute=10_000)
    source = tmp_path / "people.csv"
    source.write_text(as_csv(list(rows(3_000))))
    state = tmp_path / "state"
    remembered = resumable.Remembered(state / "tidegate" / "uploads.json")
    # The first third is sent, then the process "dies": its upload is remembered.
    async with aiohttp.ClientSession(headers=bearer(key)) as session:
        size = source.stat().st_size
        url = await resumable._create(session, services.api, source, size, customers, {})
        remembered.put(remembered.key(services.api, source, customers), url)
        offset, _ = await resumable._send(session, url, source, 0, size // 3)
    assert offset == size // 3
    code, out, err = await _cli(
        "import", str(source), "--table", customers, "--resume", "--api", services.api,
        key=key, XDG_STATE_HOME=str(state),
    )  # fmt: skip
    assert code == 0, err
    assert "accepted import" in out
    uploads = await db.fetch(
        "SELECT import_id FROM tidegate.uploads WHERE target_table = $1", customers
    )
    assert len(uploads) == 1 and uploads[0]["import_id"] is not None  # no second upload
    assert await table_rows(db, customers) == [typed(r) for r in rows(3_000)]
    assert remembered.get(remembered.key(services.api, source, customers)) is None
