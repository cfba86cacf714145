"""`POST /encodings/detect`: the encoding the gateway would decide for a file, from its first
`SNIFF_BYTES` (the console's preview asks, so that it tells the same story as the import)."""

from __future__ import annotations

import codecs

import msgspec
from aiohttp import web

from services.gateway.imports.resources import API, respond
from services.gateway.imports.submit import csv_problem
from services.gateway.intake.body import open_upload
from services.gateway.intake.csv_stream import SNIFF_BYTES, CsvInputError, decide_encoding
from services.gateway.params import FLAG, Param, flag
from shared.service import SETTINGS
from shared.text_encoding import DecidedBy

routes = web.RouteTableDef()
COMPLETE = Param(name="complete", schema=FLAG, description="the body is the whole file")


class EncodingDetection(msgspec.Struct, kw_only=True):
    encoding: str  # the name tidegate uses (as the import shows it)
    decided_by: DecidedBy  # bom, or detected
    confidence: float | None  # the share of non-ASCII characters read plausibly
    label: str  # the WHATWG label a browser's TextDecoder takes for it


def _label(name: str, sample: bytes) -> str:
    if name == "utf-16":
        return "utf-16be" if sample.startswith(codecs.BOM_UTF16_BE) else "utf-16le"
    return {"mac-cyrillic": "x-mac-cyrillic"}.get(name, name.replace("_", "-"))


@routes.post(f"{API}/encodings/detect", name="encodings.detect")
async def detect_encoding(request: web.Request) -> web.Response:
    """The body is a file's first bytes (up to SNIFF_BYTES); `complete=true` when it is the
    whole file."""
    complete = flag(request.query, COMPLETE.name)
    blocks, _, _ = await open_upload(request, SNIFF_BYTES, request.app[SETTINGS].body_idle_seconds)
    sample = b"".join([block async for block in blocks])
    try:
        decided = decide_encoding(sample, final=complete)
    except CsvInputError as exc:
        raise csv_problem(exc) from None
    name = decided.encoding.name
    return respond(
        EncodingDetection(
            encoding=name,
            decided_by=decided.decided_by,
            confidence=decided.confidence,
            label=_label(name, sample),
        )
    )
