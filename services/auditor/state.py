"""The import state machine, as pure functions of an import's counts.

pending → validating → loading → completed | completed_with_errors | failed

Counts only grow, so the derived status only moves forward. Facts about one chunk come
from different topics and may arrive in any order; an import is finished when every one
of its chunks has been submitted, validated and loaded (not loaded, for a validate-only
import); then it is `completed` if no row failed, `failed` if a chunk failed as a whole or
rows failed and none were loaded (none were valid, for validate-only), else
`completed_with_errors`. An atomic import fails at its first rejected row.

Two terminal states are reached outside this flow: `cancelled` (by a person, while it ran)
and `rolled_back` (undone after it finished, by the loader).
"""

from __future__ import annotations

import msgspec

from shared.events import Mode
from shared.import_status import (
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    LOADING,
    ORDER,
    TERMINAL,
    VALIDATING,
)


class Counts(msgspec.Struct, kw_only=True):
    mode: Mode = "import"
    atomic: bool = False
    total_rows: int = 0
    valid_rows: int = 0
    loaded_rows: int = 0
    failed_rows: int = 0
    skipped_rows: int = 0
    updated_rows: int = 0
    duplicate_rows: int = 0
    chunks_total: int | None = None
    chunks_submitted: int = 0
    chunks_validated: int = 0
    chunks_loaded: int = 0
    chunks_failed: int = 0


class Submitted(msgspec.Struct, frozen=True):
    seq: int
    rows: int
    last: bool


class Validated(msgspec.Struct, frozen=True):
    valid: int
    invalid: int
    skipped: int = 0
    duplicates: int = 0
    chunk_failed: bool = False


class Loaded(msgspec.Struct, frozen=True):
    loaded: int
    failed: int
    updated: int = 0
    skipped: int = 0
    duplicates: int = 0
    chunk_failed: bool = False


Fact = Submitted | Validated | Loaded


def apply_fact(counts: Counts, fact: Fact) -> Counts:
    """The counts after one new (chunk, stage) fact."""
    new = msgspec.structs.replace(counts)
    match fact:
        case Submitted(seq=seq, rows=rows, last=last):
            new.total_rows += rows
            new.chunks_submitted += 1
            if last:
                new.chunks_total = seq + 1
        case Validated():
            new.valid_rows += fact.valid
            new.failed_rows += fact.invalid
            new.skipped_rows += fact.skipped
            new.duplicate_rows += fact.duplicates
            new.chunks_validated += 1
            new.chunks_failed += fact.chunk_failed
        case Loaded():
            new.loaded_rows += fact.loaded
            new.failed_rows += fact.failed
            new.updated_rows += fact.updated
            new.skipped_rows += fact.skipped
            new.duplicate_rows += fact.duplicates
            new.chunks_loaded += 1
            new.chunks_failed += fact.chunk_failed
    return new


def status_of(counts: Counts) -> str:
    """The status implied by counts, once at least one fact has been applied."""
    total = counts.chunks_total
    validate_only = counts.mode == "validate_only"
    loaded = total is not None and (validate_only or counts.chunks_loaded >= total)
    seen = total is not None and min(counts.chunks_submitted, counts.chunks_validated) >= total
    if counts.atomic and counts.failed_rows > 0:
        return FAILED
    if seen and loaded:
        if counts.chunks_failed > 0:
            return FAILED
        if counts.failed_rows == 0:
            return COMPLETED
        if (counts.valid_rows if validate_only else counts.loaded_rows) == 0:
            return FAILED
        return COMPLETED_WITH_ERRORS
    if counts.chunks_loaded > 0:
        return LOADING
    return VALIDATING


def next_status(current: str, counts: Counts) -> str:
    """Never leaves a terminal state and never moves backwards."""
    if current in TERMINAL:
        return current
    derived = status_of(counts)
    return max(current, derived, key=ORDER.index)
