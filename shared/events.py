"""Event schemas: the public contract on the topics (documented in docs/asyncapi.yaml).

Rows travel as compact arrays per chunk. Schema changes only add fields with defaults;
a breaking change is a new `...v2` type. Every event has a deterministic id, so a consumer
can recognise a redelivery.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Line = Annotated[int, msgspec.Meta(ge=1)]


class RowError(msgspec.Struct, frozen=True, kw_only=True):
    """One problem with one cell (or with a whole row when `column` is None)."""

    line: Line
    column: str | None
    code: str
    message: str
    value: str | None = None


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    import_id: uuid.UUID


class ChunkSubmitted(_Event, frozen=True, tag="tidegate.chunk.submitted.v1"):
    """A slice of a CSV file, as parsed: raw text cells, an empty cell meaning NULL.

    `lines[i]` is the file line on which row i starts; when absent, rows are taken to
    start on consecutive lines from `first_line`. `last` marks the final chunk, which
    tells the auditor how many chunks the import has.
    """

    seq: NonNegative
    table: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    first_line: Line = 2
    lines: list[int] | None = None
    last: bool = False

    def line_numbers(self) -> list[int]:
        if self.lines is not None:
            return self.lines
        return list(range(self.first_line, self.first_line + len(self.rows)))


class ChunkValidated(_Event, frozen=True, tag="tidegate.chunk.validated.v1"):
    """The rows of a chunk that passed every rule, and one error per bad cell."""

    seq: NonNegative
    table: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]
    total_rows: NonNegative
    invalid_rows: NonNegative
    errors: list[RowError] = msgspec.field(default_factory=list)
    chunk_error: str | None = None


class ChunkLoaded(_Event, frozen=True, tag="tidegate.chunk.loaded.v1"):
    """The outcome of loading one validated chunk (rows the database refused are errors)."""

    seq: NonNegative
    loaded_rows: NonNegative
    failed_rows: NonNegative
    errors: list[RowError] = msgspec.field(default_factory=list)
    chunk_error: str | None = None


class ImportStatus(_Event, frozen=True, tag="tidegate.import.status.v1"):
    """The state and counts of an import after the auditor applied an event."""

    status: str
    version: NonNegative
    total_rows: NonNegative
    valid_rows: NonNegative
    loaded_rows: NonNegative
    failed_rows: NonNegative
    chunks_total: NonNegative | None
    chunks_loaded: NonNegative


Event = ChunkSubmitted | ChunkValidated | ChunkLoaded | ImportStatus


def event_type(event: msgspec.Struct) -> str:
    """The versioned type name (the struct's tag), which is also the CloudEvents `type`."""
    tag = msgspec.inspect.type_info(type(event))
    assert isinstance(tag, msgspec.inspect.StructType)
    assert isinstance(tag.tag, str)
    return tag.tag


def event_id(event: Event) -> str:
    """Deterministic id: the same effect always carries the same id."""
    match event:
        case ChunkSubmitted(seq=seq):
            return f"{event.import_id}:{seq}:submitted"
        case ChunkValidated(seq=seq):
            return f"{event.import_id}:{seq}:validated"
        case ChunkLoaded(seq=seq):
            return f"{event.import_id}:{seq}:loaded"
        case ImportStatus(version=version):
            return f"{event.import_id}:status:{version}"
    raise AssertionError(f"unknown event {type(event)!r}")  # pragma: no cover


_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_json_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)

MSGPACK = "application/msgpack"
JSON = "application/json"


def encode(event: Event) -> bytes:
    """Events are written as MessagePack; JSON is accepted from upstream producers."""
    return _msgpack_encoder.encode(event)


def decode(payload: bytes, content_type: str = MSGPACK) -> Event:
    """Decode and validate an event; raises msgspec.ValidationError / DecodeError."""
    if content_type.split(";", maxsplit=1)[0].strip() == JSON:
        return _json_decoder.decode(payload)
    return _msgpack_decoder.decode(payload)
