"""Which chunk events of a fetched batch a batch handler applies together (the validator's
references, the loader's verdicts): consecutive chunks of one import, seq by seq, up to a
chunk's largest size in rows; anything else alone. And how runs are applied in two
stages, the next prepared while one is finished."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.events import ChunkLoaded, ChunkStored, Event
from shared.kafka.records import Delivery, Outgoing
from shared.kafka.runs import apply_in_stages, chunk_runs

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


def _stored(import_id: uuid.UUID, seq: int) -> ChunkStored:
    return ChunkStored(import_id=import_id, seq=seq, row_count=1)


def _chunk_of(event: Event) -> tuple[uuid.UUID, int, int] | None:
    return (event.import_id, event.seq, 1) if isinstance(event, ChunkStored) else None


class _Stages:
    """Stages that note what happens when; `finish` waits (as on the database) until told."""

    def __init__(self, refuse: str = "", fail: str = "", prepare_seconds: float = 0) -> None:
        self.log: list[str] = []
        self.refuse, self.fail = refuse, fail
        self.prepare_seconds = prepare_seconds

    async def prepare(self, run: list[Event]) -> list[str] | None:
        names = [_name(e) for e in run]
        self.log.append("prepare " + "".join(names))
        await asyncio.sleep(self.prepare_seconds)
        self.log.append("prepared " + "".join(names))
        return None if self.refuse in names else names

    async def finish(self, names: list[str]) -> list[Outgoing]:
        self.log.append("finish " + "".join(names))
        await asyncio.sleep(0.01)  # with ahead, the next run is prepared meanwhile
        if self.fail in names:
            raise RuntimeError("refused")
        self.log.append("finished " + "".join(names))
        return [("t", _stored(A, 0), name) for name in names]

    async def one(self, event: Event, _: Delivery) -> list[Outgoing]:
        self.log.append("one " + _name(event))
        return [("t", event, _name(event))]


async def _apply(stages: _Stages, *, ahead: bool) -> list[list[str]]:
    batch = _batch([_stored(A, 0), _stored(A, 1), _stored(A, 2), _stored(A, 3), _stored(B, 0)])
    parts = apply_in_stages(
        batch, _chunk_of, 2, stages.prepare, stages.finish, stages.one, ahead=ahead
    )
    return [[key for _, _, key in part] async for part in parts]


async def test_with_ahead_the_next_run_is_prepared_while_one_is_finished() -> None:
    stages = _Stages()
    assert await _apply(stages, ahead=True) == [["A0", "A1"], ["A2", "A3"], ["B0"]]
    assert stages.log == [
        "prepare A0A1",
        "prepared A0A1",
        "finish A0A1",
        "prepare A2A3",
        "prepared A2A3",
        "finished A0A1",
        "finish A2A3",
        "finished A2A3",
        "one B0",
    ]


async def test_without_ahead_each_run_is_prepared_after_the_one_before_is_finished() -> None:
    stages = _Stages()
    assert await _apply(stages, ahead=False) == [["A0", "A1"], ["A2", "A3"], ["B0"]]
    assert stages.log.index("prepare A2A3") > stages.log.index("finished A0A1")


async def test_a_run_its_prepare_refuses_goes_event_by_event() -> None:
    stages = _Stages(refuse="A2")
    assert await _apply(stages, ahead=True) == [["A0", "A1"], ["A2"], ["A3"], ["B0"]]
    assert "finish A2A3" not in stages.log


async def test_a_failed_finish_leaves_no_prepare_running() -> None:
    stages = _Stages(fail="A0", prepare_seconds=0.05)
    with pytest.raises(RuntimeError):
        await _apply(stages, ahead=True)
    # The next run's prepare was under way when the finish failed: it was cancelled.
    assert stages.log == ["prepare A0A1", "prepared A0A1", "finish A0A1", "prepare A2A3"]
    assert set(asyncio.all_tasks()) == {asyncio.current_task()}
