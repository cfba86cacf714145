"""`make bench-uploads`: a resumable upload (tus, as `tidegate import` sends it) against
`POST /import` of the same file, in one run, and the time to finish an upload cut at 90 %.

The file is 100 MB in 10,000 records (the default record limit; about 10 kB each), sent
over localhost (where sending costs nothing, so the gateway's own work is all there is),
then through a proxy that holds the client's uplink to 100 Mbit/s (`--link-mbit`). Each
round, in turns: the file posted (`POST /import`, as `client.upload` sends it) and the file
sent as a resumable upload (8 MiB per PATCH, as the CLI and the console send it), each
timed from the first byte to the import's 202 (or the last PATCH's 204), then left to
finish untimed; then an upload whose connection is cut after 90 % of the file, timed from
the client's HEAD to the last PATCH's 204, against sending the whole file again. Raw COPY
of the file is printed for scale. Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import io
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bench.run import DATA, fresh_table, raw_copy
from tidegate import client, resumable
from tidegate.keys import create_key
from tidegate.sample_data import rows, write_csv
from tidegate.stack import Stack

RECORDS = 10_000
SIZE = 100_000_000  # bytes: under the default 100 MiB file limit
CUT_AT = 0.9
BLOCK = 1 << 20


@contextlib.asynccontextmanager
async def link(api: str, mbit_per_s: float | None) -> AsyncIterator[str]:
    """The API's address through a TCP proxy that sends the client's bytes at most at
    `mbit_per_s` (an uplink; answers pass freely); the API itself when None."""
    if mbit_per_s is None:
        yield api
        return
    target = urllib.parse.urlsplit(api)
    rate = mbit_per_s * 1e6 / 8  # bytes/s

    free_at = time.perf_counter()  # when the uplink has sent all it was given

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, paced: bool) -> None:
        nonlocal free_at
        try:
            while data := await reader.read(64 * 1024):
                if paced:  # one uplink for every connection, never faster than `rate`
                    free_at = max(free_at, time.perf_counter()) + len(data) / rate
                    await asyncio.sleep(free_at - time.perf_counter())
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.hostname, target.port
        )
        with contextlib.suppress(asyncio.CancelledError):  # the proxy closing at the end
            await asyncio.gather(
                pipe(reader, upstream_writer, paced=True),
                pipe(upstream_reader, writer, paced=False),
            )

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


def dataset() -> Path:
    """10,000 sample records, each with a long note, about SIZE bytes in all."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"uploads_{RECORDS}_{SIZE}.csv"
    if not path.exists():
        plain = io.StringIO()
        write_csv(plain, RECORDS)
        pad = (SIZE - len(plain.getvalue().encode())) // RECORDS  # bytes to add per note
        with path.open("w", encoding="utf-8", newline="") as out:
            write_csv(out, 0)  # the header
            writer = csv.writer(out, lineterminator="\n")
            for row in rows(RECORDS):
                writer.writerow([*row[:8], f"{row[8]} {'n' * (pad - 1)}"])
    return path


async def posted(
    session: aiohttp.ClientSession, api: str, path: Path, table: str
) -> tuple[float, str]:
    started = time.perf_counter()
    accepted = await client.upload(session, api, path, table, progress=False)
    return time.perf_counter() - started, str(accepted["id"])


async def resumed(
    session: aiohttp.ClientSession,
    api: str,
    path: Path,
    table: str,
    state: Path,
    *,
    resume: bool = False,
) -> tuple[float, str]:
    started = time.perf_counter()
    accepted = await resumable.upload(
        session,
        api,
        path,
        table,
        progress=False,
        resume=resume,
        remembered=resumable.Remembered(state),
    )
    return time.perf_counter() - started, str(accepted["id"])


async def cut_upload(
    session: aiohttp.ClientSession, api: str, path: Path, size: int, table: str, state: Path
) -> int:
    """An upload of `path` whose connection is lost after CUT_AT of it was sent; the bytes
    the gateway kept. Its URL is remembered, as the CLI remembers it."""
    metadata = f"table {base64.b64encode(table.encode()).decode()}"
    headers = {**resumable.TUS, "Upload-Length": str(size), "Upload-Metadata": metadata}
    async with session.post(f"{api}/api/v1/database/uploads", headers=headers) as answer:
        url = api + answer.headers["Location"]
    resumable.Remembered(state).put(resumable.Remembered.key(api, path, table), url)

    async def body() -> AsyncIterator[bytes]:
        with path.open("rb") as handle:
            sent = 0
            while sent < size * CUT_AT:
                block = handle.read(BLOCK)
                sent += len(block)
                yield block
        await asyncio.sleep(0.5)  # the gateway reads what was sent
        raise ConnectionResetError("cut")

    patch = {
        **resumable.TUS,
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    try:
        async with session.patch(url, data=body(), headers=patch) as answer:
            await answer.read()
    except (aiohttp.ClientError, ConnectionResetError):
        pass
    kept, settled = -1, 0
    while settled < 3:  # the gateway stores the cut part once it notices the cut
        await asyncio.sleep(0.2)
        async with session.head(url, headers=resumable.TUS) as answer:
            offset = int(answer.headers["Upload-Offset"])
        settled = settled + 1 if offset == kept else 0
        kept = offset
    return kept


async def settle(session: aiohttp.ClientSession, api: str, import_id: str) -> None:
    final = await client.follow(session, api, import_id, progress=False, poll=0.5)
    assert final["status"] == "completed", final


async def rounds(
    database_url: str, direct: str, path: Path, size: int, count: int, mbit_per_s: float | None
) -> dict[str, list[float]]:
    key = await create_key(
        database_url, "bench uploads", "data_manager", requests_per_minute=1_000_000
    )
    times: dict[str, list[float]] = {"post": [], "tus": [], "resume": [], "kept": []}
    timeout = aiohttp.ClientTimeout(total=3600)
    speed = "" if mbit_per_s is None else f"_{mbit_per_s:g}"
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "uploads.json"
        async with link(direct, mbit_per_s) as api, client.session(key, timeout=timeout) as session:
            for n in range(count):
                order = ("post", "tus") if n % 2 == 0 else ("tus", "post")
                for kind in order:
                    table = await fresh_table(database_url, f"bench_up_{kind}{speed}_{n}")
                    if kind == "post":
                        seconds, import_id = await posted(session, api, path, table)
                    else:
                        seconds, import_id = await resumed(session, api, path, table, state)
                    times[kind].append(seconds)
                    await settle(session, api, import_id)
                table = await fresh_table(database_url, f"bench_up_cut{speed}_{n}")
                times["kept"].append(await cut_upload(session, api, path, size, table, state))
                seconds, import_id = await resumed(session, api, path, table, state, resume=True)
                times["resume"].append(seconds)
                await settle(session, api, import_id)
                print(
                    f"round {n + 1}: POST {times['post'][-1]:.2f} s,"
                    f" resumable {times['tus'][-1]:.2f} s, resume after a cut at"
                    f" {times['kept'][-1] / size:.0%}: {times['resume'][-1]:.2f} s",
                    flush=True,
                )
    return times


def report(path: Path, size: int, copy_s: float, link: str, times: dict[str, list[float]]) -> None:
    post, tus, resume = (statistics.median(times[k]) for k in ("post", "tus", "resume"))
    kept = statistics.median(times["kept"])
    mb = size / 1e6
    print(
        f"\n{link}: {path.name}, {mb:.1f} MB in {RECORDS:,} records;"
        f" medians of {len(times['post'])}"
    )
    print(f"  raw COPY of the file (no network):  {copy_s:6.2f} s  {mb / copy_s:6.1f} MB/s")
    print(f"  POST /import (to the 202):          {post:6.2f} s  {mb / post:6.1f} MB/s")
    print(
        f"  resumable upload (to the last 204): {tus:6.2f} s  {mb / tus:6.1f} MB/s"
        f"  = {post / tus:.2f} of POST's bytes/s ({tus / post - 1:+.0%} time)"
    )
    print(
        f"  cut at {kept / size:.0%} ({kept / 1e6:.1f} MB kept), then resumed: {resume:.2f} s"
        f" = {resume / post:.2f} of posting the whole file again"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--link-mbit", type=float, default=100.0, help="the second run's uplink (0: no second run)"
    )
    args = parser.parse_args()
    path = dataset()
    size = path.stat().st_size
    stack = Stack(Path(".tidegate") / "bench-uploads")
    stack.start()
    runs = {}
    try:
        copy_s = asyncio.run(raw_copy(stack.database_url, path))
        links: list[tuple[str, float | None]] = [("localhost", None)]
        if args.link_mbit:
            links.append((f"a {args.link_mbit:g} Mbit/s uplink", args.link_mbit))
        for label, mbit in links:
            print(f"{label}:", flush=True)
            runs[label] = asyncio.run(
                rounds(stack.database_url, stack.api_url, path, size, args.rounds, mbit)
            )
    finally:
        stack.stop()
    for label, times in runs.items():
        report(path, size, copy_s, label, times)


if __name__ == "__main__":
    main()
