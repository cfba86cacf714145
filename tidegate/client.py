"""A small HTTP client of the gateway API, with progress bars: upload, then follow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from shared.errors import TidegateError
from shared.import_status import TERMINAL as FINAL


class ApiError(TidegateError):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('title')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


def session(api_key: str | None, **options: Any) -> aiohttp.ClientSession:
    """A session that authenticates every request with `api_key`."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return aiohttp.ClientSession(headers=headers, **options)


async def get_json(session: aiohttp.ClientSession, url: str, **params: str) -> dict[str, Any]:
    """GET a JSON resource; a 429 is waited out (Retry-After) and retried."""
    while True:
        async with session.get(url, params=params) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            if response.status == 429 and "Retry-After" in response.headers:
                await asyncio.sleep(float(response.headers["Retry-After"]))
                continue
            if response.status != 200:
                raise ApiError(response.status, body)
            return body


async def _file_blocks(path: Path, bar: tqdm[Any]) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while block := await asyncio.to_thread(handle.read, 1 << 20):
            bar.update(len(block))
            yield block


async def upload(
    session: aiohttp.ClientSession,
    api: str,
    path: Path,
    table: str,
    options: Mapping[str, str] | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """POST the file; `options` are the import's query parameters (chunk_size, dry_run…)."""
    params = {"table": table, **(options or {})}
    size = (await asyncio.to_thread(path.stat)).st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc="upload", disable=not progress) as bar:
        async with session.post(
            f"{api}/api/v1/database/import",
            params=params,
            data=_file_blocks(path, bar),
            headers={"Content-Type": "text/csv"},
        ) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            if response.status != 202:
                raise ApiError(response.status, body)
            return body


async def follow(
    session: aiohttp.ClientSession,
    api: str,
    import_id: str,
    *,
    progress: bool = True,
    poll: float = 1.0,
) -> dict[str, Any]:
    """Poll the status resource until the import is final (once a second by default: the
    default rate limit is 60 requests a minute per key)."""
    with tqdm(total=None, unit="rows", desc="load", disable=not progress) as bar:
        while True:
            status = await get_json(session, f"{api}/api/v1/database/imports/{import_id}")
            counts = status["counts"]
            bar.total = counts["file_rows"] or counts["total"] or None
            used = counts["valid"] if status["mode"] == "validate_only" else counts["loaded"]
            done = used + counts["failed"] + counts["skipped"]
            bar.update(done - bar.n)
            bar.set_postfix_str(status["status"])
            if status["status"] in FINAL:
                return status
            await asyncio.sleep(poll)


Measure = Callable[[dict[str, Any]], tuple[int, int, str] | None]


async def wait(
    session: aiohttp.ClientSession,
    url: str,
    resource: dict[str, Any],
    *,
    poll: float = 1.0,
    progress: bool = True,
    measure: Measure | None = None,
) -> dict[str, Any]:
    """GET `url` until the resource (an operation, a backup, a verification) is no longer
    pending. Meanwhile a progress bar: of what `measure` reports (done, total, what),
    with rate and ETA, else a spinner with the seconds waited."""
    unit = "rows" if measure else "s"
    desc = resource.get("kind", "waiting")
    with tqdm(total=None, desc=desc, unit=unit, disable=not progress) as bar:
        while resource["status"] == "pending":
            await asyncio.sleep(poll)
            resource = await get_json(session, url)
            measured = measure(resource) if measure else None
            if measured is None:
                bar.update(poll if measure is None else 0)
                continue
            done, total, what = measured
            if what != bar.desc:  # the next table: a bar of its own
                bar.reset(total=total)
                bar.set_description_str(what)
            bar.total = max(total, done)
            bar.update(done - bar.n)
        bar.set_postfix_str(resource["status"])
    return resource


async def report(session: aiohttp.ClientSession, api: str, import_id: str) -> dict[str, Any]:
    return await get_json(session, f"{api}/api/v1/database/imports/{import_id}/report")


async def row_errors(
    session: aiohttp.ClientSession, api: str, import_id: str, limit: int = 20
) -> dict[str, Any]:
    return await get_json(
        session, f"{api}/api/v1/database/imports/{import_id}/errors", limit=str(limit)
    )


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    """Any other request whose answer is JSON; ApiError unless it succeeded."""
    async with session.request(method, url, **kwargs) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        if response.status >= 300:
            raise ApiError(response.status, body)
        return body


async def export(
    session: aiohttp.ClientSession, api: str, params: Mapping[str, str], path: Path
) -> int:
    """Stream a table's CSV into `path`; returns the number of data rows."""
    async with session.get(f"{api}/api/v1/database/export", params=params) as response:
        if response.status != 200:
            raise ApiError(response.status, await response.json(content_type=None))
        lines = 0
        with path.open("wb") as out, tqdm(unit="B", unit_scale=True, desc="export") as bar:
            async for block in response.content.iter_chunked(1 << 20):
                await asyncio.to_thread(out.write, block)
                lines += block.count(b"\n")
                bar.update(len(block))
        return max(lines - 1, 0)


def show(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)
