"""Cutting a fetched batch into runs that a batch handler applies together: consecutive
chunks of one import, seq by seq, up to a number of rows (no more in memory at once than
one chunk of the largest size); any other event is a run of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

from shared.kafka.records import Delivery, Outgoing

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


async def apply_in_runs(
    items: Sequence[tuple[E, Delivery]],
    chunk_of: ChunkOf[E],
    max_rows: int,
    together: Callable[[list[E]], Awaitable[list[Outgoing] | None]],
    one: Callable[[E, Delivery], Awaitable[list[Outgoing]]],
) -> AsyncGenerator[list[Outgoing], None]:
    """A batch handler's loop: each run of several chunks applied by `together` (None: it
    must go event by event), everything else by `one`; the events of each part yielded as
    soon as it is applied."""
    for run in chunk_runs(items, chunk_of, max_rows):
        done = await together([event for event, _ in run]) if len(run) > 1 else None
        if done is None:
            for event, delivery in run:
                yield await one(event, delivery)
        else:
            yield done
