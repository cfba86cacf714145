"""The auditor's narrow view decodes what the shared schemas encode, rows left undecoded."""

from __future__ import annotations

import uuid

import msgspec

from services.auditor import view
from shared import events

IMPORT = uuid.uuid4()


def test_views_count_rows_of_submitted_and_validated_chunks() -> None:
    submitted = events.ChunkSubmitted(
        import_id=IMPORT,
        seq=2,
        table="public.t",
        columns=("a",),
        rows=[["1"], ["2"], ["3"]],
        last=True,
    )
    seen = view.decode(events.encode(submitted))
    assert isinstance(seen, view.SubmittedView)
    assert (seen.import_id, seen.seq, len(seen.rows), seen.last) == (IMPORT, 2, 3, True)

    error = events.RowError(line=4, column="a", code="required", message="m", value="")
    validated = events.ChunkValidated(
        import_id=IMPORT,
        seq=2,
        table="public.t",
        columns=("a",),
        dropped=[1],
        total_rows=2,
        invalid_rows=1,
        errors=[error],
    )
    for payload, content_type in (
        (events.encode(validated), events.MSGPACK),
        (msgspec.json.encode(validated), events.JSON),
    ):
        seen = view.decode(payload, content_type)
        assert isinstance(seen, view.ValidatedView)
        assert (seen.total_rows, seen.invalid_rows, seen.errors) == (2, 1, [error])


def test_small_events_are_the_shared_ones() -> None:
    loaded = events.ChunkLoaded(import_id=IMPORT, seq=0, loaded_rows=5, failed_rows=0)
    assert view.decode(events.encode(loaded)) == loaded
    stored = events.ChunkStored(import_id=IMPORT, seq=3, row_count=1000, last=True)
    assert view.decode(events.encode(stored)) == stored
