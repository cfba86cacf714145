"""A small HTTP client of the gateway API, with progress bars: upload, then follow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from shared.errors import TidegateError

FINAL = {"completed", "completed_with_errors", "failed"}


class ApiError(TidegateError):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('title')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


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
    poll: float = 0.25,
) -> dict[str, Any]:
    """Poll the status resource until the import is final."""
    with tqdm(total=None, unit="rows", desc="load", disable=not progress) as bar:
        while True:
            async with session.get(f"{api}/api/v1/database/imports/{import_id}") as response:
                status: dict[str, Any] = await response.json(content_type=None)
                if response.status != 200:
                    raise ApiError(response.status, status)
            counts = status["counts"]
            bar.total = counts["file_rows"] or counts["total"] or None
            used = counts["valid"] if status["mode"] == "validate_only" else counts["loaded"]
            done = used + counts["failed"] + counts["skipped"]
            bar.update(done - bar.n)
            bar.set_postfix_str(status["status"])
            if status["status"] in FINAL:
                return status
            await asyncio.sleep(poll)


async def report(session: aiohttp.ClientSession, api: str, import_id: str) -> dict[str, Any]:
    async with session.get(f"{api}/api/v1/database/imports/{import_id}/report") as response:
        body: dict[str, Any] = await response.json(content_type=None)
        return body


async def row_errors(
    session: aiohttp.ClientSession, api: str, import_id: str, limit: int = 20
) -> dict[str, Any]:
    async with session.get(
        f"{api}/api/v1/database/imports/{import_id}/errors", params={"limit": str(limit)}
    ) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        return body


def show(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)
