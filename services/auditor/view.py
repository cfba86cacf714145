"""The auditor's view of the chunk events: it needs how many rows a chunk holds, not what
they say, so an inline chunk's rows are kept as undecoded `msgspec.Raw` slices (no per-cell
objects). References (chunk.stored) and verdicts carry counts only."""

from __future__ import annotations

import uuid

import msgspec

from shared import events
from shared.events import ChunkLoaded, ChunkStored, ImportStatus, Mode, NonNegative, RowError


class _View(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    import_id: uuid.UUID
    seq: NonNegative
    table: str
    columns: tuple[str, ...]


class SubmittedView(_View, frozen=True, tag="tidegate.chunk.submitted.v1"):
    rows: list[msgspec.Raw]
    last: bool = False
    mode: Mode = "import"


class ValidatedView(_View, frozen=True, tag="tidegate.chunk.validated.v2"):
    total_rows: NonNegative
    invalid_rows: NonNegative
    errors: list[RowError] = msgspec.field(default_factory=list)
    chunk_error: str | None = None
    mode: Mode = "import"
    skipped_rows: NonNegative = 0
    duplicate_rows: NonNegative = 0


AuditedEvent = SubmittedView | ChunkStored | ValidatedView | ChunkLoaded | ImportStatus

_msgpack: msgspec.msgpack.Decoder[AuditedEvent] = msgspec.msgpack.Decoder(AuditedEvent)
_json: msgspec.json.Decoder[AuditedEvent] = msgspec.json.Decoder(AuditedEvent)


def decode(payload: bytes, content_type: str = events.MSGPACK) -> AuditedEvent:
    if content_type.split(";", maxsplit=1)[0].strip() == events.JSON:
        return _json.decode(payload)
    return _msgpack.decode(payload)
