"""Event encoding: versioned tags, deterministic ids, untrusted input rejected."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from shared import events

IMPORT = uuid.UUID("6f1c2b9e-0d5b-4a7a-9a43-2d8f6f0b8e11")


def submitted(**extra: object) -> events.ChunkSubmitted:
    fields: dict[str, object] = {
        "import_id": IMPORT,
        "seq": 3,
        "table": "public.t",
        "columns": ("a", "b"),
        "rows": [["1", "x"], ["2", ""]],
        "first_line": 10,
    }
    fields.update(extra)
    return events.ChunkSubmitted(**fields)  # type: ignore[arg-type]


def test_round_trip_and_type() -> None:
    event = submitted()
    assert events.decode(events.encode(event)) == event
    assert events.event_type(event) == "tidegate.chunk.submitted.v1"
    assert events.event_id(event) == f"{IMPORT}:3:submitted"
    assert event.line_numbers() == [10, 11]


def test_upstream_json_is_accepted() -> None:
    payload = msgspec.json.encode(submitted(lines=[10, 12]))
    assert b'"type":"tidegate.chunk.submitted.v1"' in payload
    decoded = events.decode(payload, "application/json; charset=utf-8")
    assert isinstance(decoded, events.ChunkSubmitted)
    assert decoded.line_numbers() == [10, 12]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "tidegate.chunk.submitted.v1", "import_id": "nope", "seq": 0, "table": "t",'
        b' "columns": [], "rows": []}',
        b'{"type": "tidegate.chunk.submitted.v1", "import_id": "6f1c2b9e-0d5b-4a7a-9a43-'
        b'2d8f6f0b8e11", "seq": -1, "table": "t", "columns": [], "rows": []}',
        b'{"type": "tidegate.chunk.exploded.v9", "import_id": "x"}',
        b"not json",
    ],
)
def test_invalid_events_are_refused(payload: bytes) -> None:
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        events.decode(payload, events.JSON)


def test_status_ids_are_versioned() -> None:
    status = events.ImportStatus(
        import_id=IMPORT,
        status="loading",
        version=4,
        total_rows=1,
        valid_rows=1,
        loaded_rows=0,
        failed_rows=0,
        chunks_total=None,
        chunks_loaded=0,
    )
    assert events.event_id(status) == f"{IMPORT}:status:4"
