"""What the reconciler decides to re-drive, from an import's records (pure)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from services.auditor.reconciler import Missing
from shared import events


def records(total: int | None = 4, **sets: list[int]) -> dict[str, Any]:
    row: dict[str, Any] = {"chunks_total": total}
    for name in ("stored", "submitted", "validated", "loaded", "ledger"):
        row[name] = sets.get(name, [])
    return row


def test_lost_loaded_facts_are_counted_from_the_ledger_and_lost_chunks_resent() -> None:
    all4 = [0, 1, 2, 3]
    missing = Missing(
        records(stored=all4, submitted=all4, validated=[0, 1, 2], loaded=[0], ledger=[0, 1]),
        validate_only=False,
    )
    assert missing.uncounted_loads == [1]
    assert missing.resend == [2, 3]  # 2 validated but never loaded; 3 never validated
    assert missing.lost == []


def test_validate_only_needs_no_ledger_and_unstored_chunks_are_lost() -> None:
    missing = Missing(
        records(total=3, stored=[], submitted=[0, 1, 2], validated=[0, 1]), validate_only=True
    )
    assert (missing.uncounted_loads, missing.resend, missing.lost) == ([], [], [2])
    assert "tidegate holds no copy" in missing.describe()


def test_shape_problems_are_found_before_any_effect() -> None:
    validated = events.ChunkValidated(
        import_id=uuid.uuid4(),
        seq=0,
        table="public.t",
        columns=("a", "b"),
        dropped=[1, 1],
        total_rows=2,
        invalid_rows=2,
    )
    assert events.shape_problem(validated) == "dropped rows must be in increasing order"
    changed = msgspec.structs.replace(
        validated, dropped=[1], invalid_rows=1, changes=[events.CellChange(0, 2, "x")]
    )
    assert events.shape_problem(changed) == "changed cell (0, 2) outside the chunk"
    uncounted = msgspec.structs.replace(validated, dropped=[0], invalid_rows=0)
    assert events.shape_problem(uncounted) == "1 dropped rows for 0 invalid and skipped"
    submitted = events.ChunkSubmitted(
        import_id=uuid.uuid4(), seq=0, table="public.t", columns=("a", "a"), rows=[]
    )
    assert events.shape_problem(submitted) == "columns must be non-empty and distinct"
    ragged = events.ChunkSubmitted(
        import_id=uuid.uuid4(), seq=0, table="public.t", columns=("a", "b"), rows=[["1"]]
    )
    assert events.shape_problem(ragged) is None  # the validator's row errors
