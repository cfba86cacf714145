"""Uploading a file as a resumable upload (tus 1.0, `/api/v1/database/uploads`) with a
progress bar of the bytes the gateway has stored. A cut connection is resumed by itself
from the offset the gateway reports; the upload's URL is remembered (`Remembered`) until
it becomes an import, so `tidegate import FILE --resume` goes on after the process died."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from tidegate.client import ApiError, get_json

PART_BYTES = 8 << 20  # bytes per PATCH
ATTEMPTS = 8  # tries after a cut connection before giving up (1, 2, 4 … 30 s apart)
TUS = {"Tus-Resumable": "1.0.0"}


class Remembered:
    """Upload URLs not yet finished, by (gateway, file, size, modification time, table), in
    $XDG_STATE_HOME/tidegate/uploads.json (~/.local/state/tidegate/ by default)."""

    def __init__(self, path: Path | None = None) -> None:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        self.path = path or Path(base) / "tidegate" / "uploads.json"

    @staticmethod
    def key(api: str, file: Path, table: str) -> str:
        stat = file.stat()
        return f"{api} {file.resolve()} {stat.st_size} {stat.st_mtime_ns} {table}"

    def _all(self) -> dict[str, str]:
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def get(self, key: str) -> str | None:
        return self._all().get(key)

    def put(self, key: str, url: str | None) -> None:
        known = self._all()
        if url is None:
            known.pop(key, None)
        else:
            known[key] = url
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(known, indent=1))
        partial.replace(self.path)


async def _problem(response: aiohttp.ClientResponse) -> ApiError:
    try:
        body = await response.json(content_type=None)
    except ValueError:
        body = {"title": response.reason or "", "detail": ""}
    return ApiError(response.status, body if isinstance(body, dict) else {})


async def _create(
    session: aiohttp.ClientSession,
    api: str,
    path: Path,
    size: int,
    table: str,
    options: Mapping[str, str],
) -> str:
    metadata = ",".join(
        f"{name} {base64.b64encode(value.encode()).decode()}"
        for name, value in (("table", table), ("filename", path.name))
    )
    headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": metadata}
    async with session.post(
        f"{api}/api/v1/database/uploads", headers=headers, params=dict(options)
    ) as response:
        if response.status != 201:
            raise await _problem(response)
        return f"{api}{response.headers['Location']}"


async def _offset(session: aiohttp.ClientSession, url: str) -> int:
    async with session.head(url, headers=TUS) as response:
        if response.status != 200:
            raise await _problem(response)
        return int(response.headers["Upload-Offset"])


async def _send(
    session: aiohttp.ClientSession, url: str, path: Path, offset: int, part_bytes: int
) -> tuple[int, str | None]:
    """One PATCH of the file from `offset`: (the new offset, the import's URL if it was
    the last part)."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = await asyncio.to_thread(handle.read, part_bytes)
    headers = {
        **TUS,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    async with session.patch(url, data=data, headers=headers) as response:
        if response.status == 409 and "Upload-Offset" in response.headers:
            return int(response.headers["Upload-Offset"]), None  # resumed elsewhere: go on
        if response.status != 204:
            raise await _problem(response)
        link = response.links.get("related")
        return int(response.headers["Upload-Offset"]), str(link["url"]) if link else None


async def upload(
    session: aiohttp.ClientSession,
    api: str,
    path: Path,
    table: str,
    options: Mapping[str, str] | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    remembered: Remembered | None = None,
    part_bytes: int = PART_BYTES,
) -> dict[str, Any]:
    """The file as a resumable upload; the import it became (as `POST /import` answers).
    With `resume`, an upload of the same file left unfinished is continued."""
    remembered = remembered or Remembered()
    key = remembered.key(api, path, table)
    size = (await asyncio.to_thread(path.stat)).st_size
    url = remembered.get(key) if resume else None
    if url is not None:
        try:
            offset = await _offset(session, url)
        except ApiError:  # expired or ended: start again
            url = None
    if url is None:
        url = await _create(session, api, path, size, table, options or {})
        offset = 0
        remembered.put(key, url)
    at: int | None = offset
    imported: str | None = None
    failures = 0
    with tqdm(total=size, initial=offset, unit="B", unit_scale=True, desc="upload",
              disable=not progress) as bar:  # fmt: skip
        while True:
            try:
                if at is None:  # after a cut: where the gateway's copy ends
                    at = await _offset(session, url)
                    bar.set_postfix_str(f"resumed at byte {at}")
                if at < size:
                    at, imported = await _send(session, url, path, at, part_bytes)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures += 1
                if failures > ATTEMPTS:
                    raise ApiError(0, {"title": "Upload cut", "detail": repr(exc)}) from exc
                await asyncio.sleep(min(2 ** (failures - 1), 30))
                at = None
                continue
            failures = 0
            bar.update(at - bar.n)
            if at >= size:
                if imported is None:  # the last part went in on an earlier try
                    imported = api + str((await get_json(session, url))["import_url"])
                remembered.put(key, None)
                return await get_json(session, imported)
