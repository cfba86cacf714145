"""`tidegate import FILE --split`: a file over the key's record limit, imported as parts.

The file is cut at record boundaries (quoted newlines stay inside their record: the csv
module decides where a record ends, as the gateway's parser does) into parts of at most the
key's `max_records_per_import` records and the gateway's `max_file_bytes`, each with the
header, in the file's own encoding. The parts are imported one after another, each waited
for, with Retry-After honoured, and one progress bar over the whole file.

Each part's `Idempotency-Key` is the file's SHA-256 and the part's number, so running the
command again (after an interruption, within the gateway's 24 h of idempotency) answers
every part already received with its import instead of importing it again.

The combined report names every part's import and counts, and the failed lines numbered as
in the original file (a part's line n is the file's line `first_line + n - header lines - 1`).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from shared.errors import TidegateError
from shared.text_encoding import lookup
from tidegate import client

DELIMITERS = (",", ";", "\t", "|")
SAMPLE = 64 * 1024
ERRORS_PAGE = 1000


class SplitError(TidegateError):
    """The file cannot be cut into parts (its CSV is malformed at `line`)."""


@dataclass(frozen=True)
class Part:
    index: int
    first_line: int  # the file line its first record (or blank line) starts on
    records: int
    header_lines: int  # lines of the header (a quoted name may hold a line break)
    text: str  # the header and the records, as in the file

    def original_line(self, line: int) -> int:
        """The file's line number of the part's line `line`."""
        return line + self.first_line - self.header_lines - 1


@dataclass
class _Tap:
    """The lines csv.reader pulls, kept until taken: the raw text of each record."""

    lines: Iterator[str]
    taken: list[str] = field(default_factory=list)
    count: int = 0  # lines pulled so far

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.taken.append(line)
        self.count += 1
        return line

    def take(self) -> str:
        text, self.taken = "".join(self.taken), []
        return text


def _line_count(text: str) -> int:
    """Lines of `text` as the gateway counts them (LF, CR, CRLF)."""
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    return breaks if text.endswith(("\n", "\r")) else breaks + 1


def cut(
    lines: Iterable[str], *, delimiter: str, max_records: int, max_chars: int
) -> Iterator[Part]:
    """The parts of a CSV file given as its lines (line ends kept); each has the header, at
    most `max_records` records (blank lines do not count) and about `max_chars` characters."""
    tap = _Tap(iter(lines))
    reader = csv.reader(tap, delimiter=delimiter, strict=True)
    try:
        if next(reader, None) is None:
            return
        header = tap.take()
        body_lines = _line_count(header)  # the header's lines
        pieces: list[str] = []
        records = size = 0
        first = body_lines + 1
        index = 0
        while True:
            start = tap.count + 1
            row = next(reader, None)
            if row is None:
                break
            raw = tap.take()
            if pieces and (
                (row and records == max_records) or size + len(raw) > max_chars - len(header)
            ):
                yield Part(index, first, records, body_lines, header + "".join(pieces))
                index, pieces, records, size, first = index + 1, [], 0, 0, start
            pieces.append(raw)
            records += bool(row)
            size += len(raw)
    except csv.Error as exc:
        raise SplitError(f"line {tap.count}: {exc}; the file cannot be cut into parts") from None
    if records:
        yield Part(index, first, records, body_lines, header + "".join(pieces))


def sniff_delimiter(header: str) -> str:
    """The candidate that splits the header line (outside quotes) most often; comma on a tie."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "\r\n":
            break
        elif not quoted and char in counts:
            counts[char] += 1
    return max(DELIMITERS, key=lambda d: (counts[d], d == ","))


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SAMPLE)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


async def _decided_encoding(session: aiohttp.ClientSession, api: str, path: Path) -> str:
    """The encoding the gateway decides for the file (from its first 64 KiB)."""
    sample = await asyncio.to_thread(_head, path)
    complete = len(sample) < SAMPLE
    decided = await client.call(
        session,
        "POST",
        f"{api}/api/v1/database/encodings/detect",
        params={"complete": str(complete).lower()},
        data=sample,
        headers={"Content-Type": "text/csv"},
    )
    return str(decided["encoding"])


async def _post(
    session: aiohttp.ClientSession, api: str, params: dict[str, str], body: bytes, key: str
) -> dict[str, Any]:
    """POST one part, waiting out 429s (Retry-After)."""
    while True:
        async with session.post(
            f"{api}/api/v1/database/import",
            params=params,
            data=body,
            headers={"Content-Type": "text/csv", "Idempotency-Key": key},
        ) as response:
            answer: dict[str, Any] = await response.json(content_type=None)
            if response.status == 429:
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status != 202:
                raise client.ApiError(response.status, answer)
            return answer


async def _failed_lines(
    session: aiohttp.ClientSession, api: str, import_id: str, part: Part
) -> list[dict[str, Any]]:
    """The part's row errors, their lines as in the original file."""
    found: list[dict[str, Any]] = []
    while True:
        page = await client.call(
            session,
            "GET",
            f"{api}/api/v1/database/imports/{import_id}/errors",
            params={"limit": str(ERRORS_PAGE), "offset": str(len(found))},
        )
        found += page["items"]
        if len(found) >= page["total"] or not page["items"]:
            break
    return [
        {**e, "line": part.original_line(e["line"]) if e["line"] else e["line"], "part": part.index}
        for e in found
    ]


async def import_split(
    api: str, api_key: str | None, path: Path, table: str, options: dict[str, str]
) -> int:
    """Import `path` in parts; prints the combined report. 0 if every part completed."""
    async with client.session(api_key) as session:
        me = await client.call(session, "GET", f"{api}/api/v1/me")
        name = options.get("encoding") or await _decided_encoding(session, api, path)
        encoding = lookup(name)
        if encoding is None:
            raise SplitError(f"{name!r} is not a text encoding tidegate knows")
        digest = await asyncio.to_thread(_file_digest, path)
        # The parts' text, re-encoded, must fit the upload limit: leave room for 4-byte
        # characters and for UTF-16's two bytes a character.
        max_chars = me["max_file_bytes"] // 4
        reports: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        size = (await asyncio.to_thread(path.stat)).st_size
        with path.open(encoding=encoding.codec, newline="") as text:
            header = await asyncio.to_thread(text.readline)
            await asyncio.to_thread(text.seek, 0)
            named = options.get("delimiter")
            delimiter = {"tab": "\t", "\\t": "\t"}.get(named, named) if named else None
            delimiter = delimiter or sniff_delimiter(header)
            params = {
                "table": table,
                **options,
                "encoding": encoding.name,
                "delimiter": "tab" if delimiter == "\t" else delimiter,
            }
            header_bytes = len(codecs.encode(header, encoding.codec))
            parts = cut(
                text,
                delimiter=delimiter,
                max_records=me["max_records_per_import"],
                max_chars=max_chars,
            )
            with tqdm(total=size, unit="B", unit_scale=True, desc=path.name) as bar:
                while (part := await asyncio.to_thread(next, parts, None)) is not None:
                    body = codecs.encode(part.text, encoding.codec)
                    key = f"split-{digest}-{part.index}"
                    accepted = await _post(session, api, params, body, key)
                    final = await client.follow(session, api, accepted["id"], progress=False)
                    counts = final["counts"]
                    reports.append(
                        {
                            "part": part.index,
                            "first_line": part.first_line,
                            "records": part.records,
                            "id": final["id"],
                            "status": final["status"],
                            "loaded": counts["loaded"],
                            "failed": counts["failed"],
                            "skipped": counts["skipped"],
                        }
                    )
                    if counts["failed"] or final["status"] != "completed":
                        failures += await _failed_lines(session, api, final["id"], part)
                    bar.update(len(body) - (header_bytes if part.index else 0))
                    bar.set_postfix_str(f"part {part.index + 1}: {final['status']}")
    summary = {
        "file": str(path),
        "parts": reports,
        "records": sum(r["records"] for r in reports),
        "loaded": sum(r["loaded"] for r in reports),
        "failed": sum(r["failed"] for r in reports),
        "failed_lines": failures,
    }
    print(client.show(summary))
    return 0 if all(r["status"] == "completed" for r in reports) else 1
