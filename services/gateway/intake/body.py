"""The uploaded file as a stream of byte blocks: a `text/csv` body or a multipart part.
Every read from the client is bounded: by `idle` seconds of silence (408) and by the
gateway's stop (503)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from services.gateway.lifecycle import from_client
from services.gateway.problems import Problem

BLOCK = 1 << 20
CSV_TYPES = {"text/csv", "application/csv", "text/plain"}


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "file-too-large",
        "File too large",
        f"The upload exceeds the maximum file size of {limit} bytes.",
        max_file_size=limit,
    )


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


async def _limited(blocks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for block in blocks:
        seen += len(block)
        if seen > limit:
            raise _too_large(limit)
        yield block


def _malformed(exc: Exception) -> Problem:
    return Problem(
        400, "malformed-multipart", "Malformed multipart body", str(exc).splitlines()[0][:200]
    )


async def _part_blocks(
    request: web.Request, part: BodyPartReader, idle: float
) -> AsyncIterator[bytes]:
    try:
        while block := await from_client(request, part.read_chunk(BLOCK), idle):
            yield block
    except (HttpProcessingError, ValueError) as exc:
        raise _malformed(exc) from None


async def body_blocks(request: web.Request, idle: float) -> AsyncIterator[bytes]:
    """The request's body in blocks, each within `idle` seconds (408) unless stopping (503)."""
    while block := await from_client(request, request.content.read(BLOCK), idle):
        yield block


async def open_upload(
    request: web.Request, limit: int, idle: float
) -> tuple[AsyncIterator[bytes], str | None, str | None]:
    """(byte blocks, filename, declared charset) of the uploaded CSV; raises 413/415/422
    problems, and 408 when the client falls silent for `idle` seconds."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    if request.content_type == "multipart/form-data":
        try:
            return await _file_part(request, limit, idle)
        except (HttpProcessingError, ValueError) as exc:
            raise _malformed(exc) from None
    if request.content_type in CSV_TYPES:
        return _limited(body_blocks(request, idle), limit), None, request.charset
    raise Problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        f"Send text/csv or multipart/form-data, not {request.content_type}.",
    )


async def _file_part(
    request: web.Request, limit: int, idle: float
) -> tuple[AsyncIterator[bytes], str | None, str | None]:
    reader = await request.multipart()
    while (part := await from_client(request, reader.next(), idle)) is not None:
        if isinstance(part, BodyPartReader) and part.name == "file":
            content_type = part.headers.get("Content-Type", "text/csv")
            part_type = content_type.split(";")[0].strip()
            if part_type not in CSV_TYPES | {"application/octet-stream"}:
                raise Problem(
                    415,
                    "unsupported-media-type",
                    "Unsupported media type",
                    f"The file part is {part_type}; send text/csv.",
                )
            blocks = _part_blocks(request, part, idle)
            return _limited(blocks, limit), part.filename, _charset(content_type)
    raise Problem(
        422,
        "missing-file",
        "No file in the upload",
        'The multipart body has no part named "file".',
    )
