"""Event schemas: the public contract on the topics (documented in docs/asyncapi.json).

A chunk's rows travel once: an upstream producer may send them inline (chunk.submitted);
the gateway stores an upload's chunks in PostgreSQL and sends a reference (chunk.stored, the
claim check). Every later event names the chunk by (import_id, seq) and carries counts and
verdicts, never the rows. Schema changes only add fields with defaults;
a breaking change is a new `...v2` type. Every event has a deterministic id, so a consumer
can recognise a redelivery.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import uuid
from typing import Annotated, Any, Literal

import msgspec

from shared.error_codes import ErrorCode

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Line = Annotated[int, msgspec.Meta(ge=1)]
# import: load and commit; validate_only: every rule, nothing loaded; dry_run: load in a
# transaction that is rolled back.
Mode = Literal["import", "validate_only", "dry_run"]
DuplicatePolicy = Literal["reject", "skip", "update"]
Severity = Literal["error", "warning"]
# Work for the loader that is not a chunk (tidegate.operations holds its parameters).
OperationKind = Literal["rollback", "backup", "restore", "delete_backup"]
OperationStatus = Literal["pending", "completed", "refused", "failed"]


class RowError(msgspec.Struct, frozen=True, kw_only=True):
    """One problem with one cell (or with a whole row when `column` is None).

    An error rejects the row; a warning notes something about a row that was still
    loaded (a flagged or neutralised cell) or deliberately skipped (a duplicate).
    """

    line: Line
    column: str | None
    code: ErrorCode
    message: str
    value: str | None = None
    severity: Severity = "error"


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    import_id: uuid.UUID


class ChunkSubmitted(_Event, frozen=True, tag="tidegate.chunk.submitted.v1"):
    """A slice of a CSV file, as parsed: raw text cells, an empty cell meaning NULL.

    `lines[i]` is the file line on which row i starts; when absent, rows are taken to
    start on consecutive lines from `first_line`. `last` marks the final chunk, which
    tells the auditor how many chunks the import has. Every chunk of an import carries the
    same `mode` and `on_duplicate` (None: the table's rule file decides, else reject), and
    should be produced with the import id as key, so chunks are validated in file order.
    """

    seq: NonNegative
    table: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    first_line: Line = 2
    lines: list[int] | None = None
    last: bool = False
    mode: Mode = "import"
    on_duplicate: DuplicatePolicy | None = None

    def line_numbers(self) -> list[int]:
        if self.lines is not None:
            return self.lines
        return list(range(self.first_line, self.first_line + len(self.rows)))


class ChunkStored(_Event, frozen=True, tag="tidegate.chunk.stored.v1"):
    """A chunk kept in tidegate's chunk store under (import_id, seq): the claim check the
    gateway sends for an upload's chunk instead of its rows. `row_count` and `last` are
    the stored chunk's (the auditor counts from them)."""

    seq: NonNegative
    row_count: NonNegative
    last: bool = False


class CellChange(msgspec.Struct, frozen=True, array_like=True):
    """A cell the validator changed (neutralised, normalised): `row` and `column` are
    positions in the stored chunk and its columns."""

    row: NonNegative
    column: NonNegative
    value: str


class ChunkValidated(_Event, frozen=True, tag="tidegate.chunk.validated.v2"):
    """The validator's verdict on a stored chunk: the rows not to load (`dropped`, their
    positions in the chunk: invalid rows, then rows the duplicate policy skips), the cells
    it changed, and one error per bad cell. The rows themselves stay in the chunk store.
    `len(dropped) = invalid_rows + skipped_rows`. `duplicate_rows` counts rows whose key
    repeats an earlier row of the file or a row already in the table, whatever the policy
    did with them; `match_on` is the key an `update` policy matches on."""

    seq: NonNegative
    table: str
    columns: tuple[str, ...]
    total_rows: NonNegative
    invalid_rows: NonNegative
    errors: list[RowError] = msgspec.field(default_factory=list)
    chunk_error: str | None = None
    mode: Mode = "import"
    on_duplicate: DuplicatePolicy = "reject"
    match_on: tuple[str, ...] = ()
    skipped_rows: NonNegative = 0
    duplicate_rows: NonNegative = 0
    dropped: list[NonNegative] = msgspec.field(default_factory=list)
    changes: list[CellChange] = msgspec.field(default_factory=list)

    @property
    def valid_rows(self) -> int:
        """Rows the verdict lets through to the loader."""
        return self.total_rows - len(self.dropped)


class ChunkLoaded(_Event, frozen=True, tag="tidegate.chunk.loaded.v1"):
    """The outcome of loading one validated chunk (rows the database refused are errors).

    `loaded_rows` counts inserted and updated rows (`updated_rows` of them updated);
    `skipped_rows` were duplicates the `skip` policy left out at load time. In a dry run
    the counts say what the rolled-back transaction did.
    """

    seq: NonNegative
    loaded_rows: NonNegative
    failed_rows: NonNegative
    errors: list[RowError] = msgspec.field(default_factory=list)
    chunk_error: str | None = None
    updated_rows: NonNegative = 0
    skipped_rows: NonNegative = 0
    duplicate_rows: NonNegative = 0


class ImportStatus(_Event, frozen=True, tag="tidegate.import.status.v1"):
    """The state and counts of an import after the auditor applied a batch of its events
    (one or more: versions may skip)."""

    status: str
    version: NonNegative
    total_rows: NonNegative
    valid_rows: NonNegative
    loaded_rows: NonNegative
    failed_rows: NonNegative
    chunks_total: NonNegative | None
    chunks_loaded: NonNegative
    mode: Mode = "import"
    skipped_rows: NonNegative = 0
    updated_rows: NonNegative = 0
    duplicate_rows: NonNegative = 0


class OperationRequested(_Event, frozen=True, tag="tidegate.operation.requested.v1"):
    """A command for the loader, sent through the outbox by the gateway (or by the auditor:
    the rollback of a failed import). The operation's parameters are its row in PostgreSQL,
    which the loader reads: a command for an operation tidegate did not record is refused.
    `import_id` is the import concerned, or the operation's own id when none is."""

    operation_id: uuid.UUID
    kind: OperationKind


class OperationFinished(_Event, frozen=True, tag="tidegate.operation.finished.v1"):
    """The outcome of an operation, recorded in the same transaction as its effect.
    `result` holds its figures (rows deleted and restored, conflicts, file size...)."""

    operation_id: uuid.UUID
    kind: OperationKind
    status: OperationStatus
    error: str | None = None
    result: dict[str, Any] = msgspec.field(default_factory=dict)


class VerificationRequested(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    tag="tidegate.verification.requested.v1",
):
    """A command for the validator: check tables' current rows (verify-data). The tables
    are the verification's row in PostgreSQL: a command for a verification tidegate did
    not record is refused."""

    verification_id: uuid.UUID


Event = (
    ChunkSubmitted
    | ChunkStored
    | ChunkValidated
    | ChunkLoaded
    | ImportStatus
    | OperationRequested
    | OperationFinished
    | VerificationRequested
)


def shape_problem(event: ChunkSubmitted | ChunkValidated) -> str | None:
    """What makes a chunk event impossible to apply as it stands, beyond its schema:
    columns repeated, lines that do not match the rows, and in a verdict dropped rows or
    changed cells outside the chunk, or counts that do not add up (a submitted chunk may
    have ragged rows: they are the validator's row errors). Checked before any side
    effect."""
    width = len(event.columns)
    if width == 0 or len(set(event.columns)) != width:
        return "columns must be non-empty and distinct"
    if isinstance(event, ChunkSubmitted):
        if event.lines is not None and len(event.lines) != len(event.rows):
            return f"{len(event.lines)} lines for {len(event.rows)} rows"
        return None
    dropped = event.dropped
    if any(b <= a for a, b in itertools.pairwise(dropped)):
        return "dropped rows must be in increasing order"
    if dropped and dropped[-1] >= event.total_rows:
        return f"dropped row {dropped[-1]} beyond total_rows"
    if len(dropped) != event.invalid_rows + event.skipped_rows:
        return f"{len(dropped)} dropped rows for {event.invalid_rows} invalid and skipped"
    for change in event.changes:
        if change.row >= event.total_rows or change.column >= width:
            return f"changed cell ({change.row}, {change.column}) outside the chunk"
    return None


def digest(event: Event) -> bytes:
    """A fingerprint of an event's content: the loader applies a chunk.validated event
    only if the validator recorded this digest for it."""
    return hashlib.blake2b(encode(event), digest_size=16).digest()


@functools.cache
def type_tag(cls: type[msgspec.Struct]) -> str:
    """The versioned type name of an event class (its tag); asked of every event sent or
    received, so kept once found (msgspec.inspect is slow)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    assert isinstance(info.tag, str)
    return info.tag


def event_type(event: msgspec.Struct) -> str:
    """The versioned type name (the struct's tag), which is also the CloudEvents `type`."""
    return type_tag(type(event))


def event_id(event: Event) -> str:
    """Deterministic id: the same effect always carries the same id."""
    match event:
        case ChunkSubmitted(seq=seq) | ChunkStored(seq=seq):
            return f"{event.import_id}:{seq}:submitted"
        case ChunkValidated(seq=seq):
            return f"{event.import_id}:{seq}:validated"
        case ChunkLoaded(seq=seq):
            return f"{event.import_id}:{seq}:loaded"
        case ImportStatus(version=version):
            return f"{event.import_id}:status:{version}"
        case OperationRequested(operation_id=operation_id):
            return f"operation:{operation_id}:requested"
        case OperationFinished(operation_id=operation_id):
            return f"operation:{operation_id}:finished"
        case VerificationRequested(verification_id=verification_id):
            return f"verification:{verification_id}:requested"
    raise AssertionError(f"unknown event {type(event)!r}")  # pragma: no cover


_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_json_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)

MSGPACK = "application/msgpack"
JSON = "application/json"


class _LastEncoded:
    """The last event encoded and its bytes: a chunk's verdict is encoded for its digest
    and again to be published, and a 1,000-row chunk takes about a millisecond."""

    event: object = None
    payload = b""


def encode(event: Event) -> bytes:
    """Events are written as MessagePack; JSON is accepted from upstream producers."""
    if _LastEncoded.event is not event:
        _LastEncoded.payload = _msgpack_encoder.encode(event)
        _LastEncoded.event = event
    return _LastEncoded.payload


def decode(payload: bytes, content_type: str = MSGPACK) -> Event:
    """Decode and validate an event; raises msgspec.ValidationError / DecodeError."""
    if content_type.split(";", maxsplit=1)[0].strip() == JSON:
        return _json_decoder.decode(payload)
    return _msgpack_decoder.decode(payload)
