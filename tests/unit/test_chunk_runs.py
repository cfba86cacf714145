"""Which chunk events of a fetched batch a batch handler applies together (the validator's
references, the loader's verdicts): consecutive chunks of one import, seq by seq, up to a
chunk's largest size in rows; anything else alone."""

from __future__ import annotations

import uuid

from shared.events import ChunkLoaded, ChunkStored, Event
from shared.kafka.records import Delivery
from shared.kafka.runs import chunk_runs

A, B = uuid.UUID(int=1), uuid.UUID(int=2)


def _batch(events: list[Event]) -> list[tuple[Event, Delivery]]:
    return [(e, Delivery("t", 0, offset)) for offset, e in enumerate(events)]


def _name(event: Event) -> str:
    assert isinstance(event, ChunkStored | ChunkLoaded)
    return f"{'AB'[event.import_id.int - 1]}{event.seq}"


def _shape(runs: list[list[tuple[Event, Delivery]]]) -> list[list[str]]:
    return [[_name(e) for e, _ in run] for run in runs]


def test_runs_are_consecutive_chunks_of_one_import_within_the_row_bound() -> None:
    def stored(import_id: uuid.UUID, seq: int, rows: int = 400) -> ChunkStored:
        return ChunkStored(import_id=import_id, seq=seq, row_count=rows)

    batch = _batch(
        [
            stored(A, 0),
            stored(A, 1),
            stored(A, 2),  # 1,200 rows: over the bound of 1,000, a new run
            stored(A, 3),
            stored(B, 0),  # another import
            stored(B, 2),  # a gap in the seqs
            stored(B, 3),
            ChunkLoaded(import_id=B, seq=4, loaded_rows=1, failed_rows=0),  # not a chunk ref
            stored(A, 4, rows=1000),
            stored(A, 5, rows=1),
        ]
    )

    def chunk_of(event: Event) -> tuple[uuid.UUID, int, int] | None:
        if isinstance(event, ChunkStored):
            return event.import_id, event.seq, event.row_count
        return None

    assert _shape(chunk_runs(batch, chunk_of, 1000)) == [
        ["A0", "A1"],
        ["A2", "A3"],
        ["B0"],
        ["B2", "B3"],
        ["B4"],
        ["A4"],
        ["A5"],
    ]
