"""Cutting a fetched batch into runs that a batch handler applies together: consecutive
chunks of one import, seq by seq, up to a number of rows (no more in memory at once than
one chunk of the largest size); any other event is a run of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from shared.kafka.records import Delivery

E = TypeVar("E")
ChunkOf = Callable[[E], tuple[uuid.UUID, int, int] | None]  # (import id, seq, rows) or None


def chunk_runs(
    items: Sequence[tuple[E, Delivery]], chunk_of: ChunkOf[E], max_rows: int
) -> list[list[tuple[E, Delivery]]]:
    """`items` in runs, in order; `chunk_of` says which events may join a run."""
    runs: list[list[tuple[E, Delivery]]] = []
    last: tuple[uuid.UUID, int, int] | None = None
    rows = 0
    for event, delivery in items:
        this = chunk_of(event)
        if (
            this is not None
            and last is not None
            and (last[0], last[1] + 1) == this[:2]
            and rows + this[2] <= max_rows
        ):
            runs[-1].append((event, delivery))
            rows += this[2]
        else:
            runs.append([(event, delivery)])
            rows = this[2] if this is not None else 0
        last = this
    return runs
