"""Cutting a fetched batch into runs that a batch handler applies together: consecutive
chunks of one import, seq by seq, up to a number of rows (no more in memory at once than
one chunk of the largest size; two when the next run is prepared while one is applied);
any other event is a run of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

from shared.kafka.records import Delivery, Outgoing

E = TypeVar("E")
P = TypeVar("P")
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

    async def as_is(run: list[E]) -> list[E]:
        return run

    async for outgoing in apply_in_stages(items, chunk_of, max_rows, as_is, together, one):
        yield outgoing


async def apply_in_stages(
    items: Sequence[tuple[E, Delivery]],
    chunk_of: ChunkOf[E],
    max_rows: int,
    prepare: Callable[[list[E]], Awaitable[P | None]],
    finish: Callable[[P], Awaitable[list[Outgoing] | None]],
    one: Callable[[E, Delivery], Awaitable[list[Outgoing]]],
    *,
    ahead: bool = False,
) -> AsyncGenerator[list[Outgoing], None]:
    """`apply_in_runs` with each run applied in two stages: `prepare`, then `finish` (None
    from either: event by event). With `ahead`, the next run is prepared while this one
    is finished, so the two overlap (its awaits on the database and the other's work in
    Python): `prepare` must then not depend on what `finish` writes."""
    runs = chunk_runs(items, chunk_of, max_rows)

    def start(index: int) -> asyncio.Task[P | None] | None:
        together = index < len(runs) and len(runs[index]) > 1
        return asyncio.ensure_future(prepare(_events(runs[index]))) if together else None

    next_up = start(0)
    try:
        for index, run in enumerate(runs):
            preparing, next_up = next_up, None
            prepared = await preparing if preparing is not None else None
            if ahead:
                next_up = start(index + 1)
            done = await finish(prepared) if prepared is not None else None
            if done is None:
                for event, delivery in run:
                    yield await one(event, delivery)
            else:
                yield done
            if next_up is None:
                next_up = start(index + 1)
    finally:
        if next_up is not None:
            next_up.cancel()
            await asyncio.wait([next_up])
            if not next_up.cancelled():
                next_up.exception()  # retrieved: that run is prepared again when applied


def _events(run: list[tuple[E, Delivery]]) -> list[E]:
    return [event for event, _ in run]
