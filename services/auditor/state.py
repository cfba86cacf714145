"""The import state machine, as pure functions of an import's counts.

pending → validating → loading → completed | completed_with_errors | failed

Counts only grow, so the derived status only moves forward. Facts about one chunk come
from different topics and may arrive in any order; an import is finished when every one
of its chunks has been both validated and loaded; then it is `completed` if no row failed,
`failed` if rows failed and none loaded, else `completed_with_errors`.
"""

from __future__ import annotations

import msgspec

PENDING = "pending"
VALIDATING = "validating"
LOADING = "loading"
COMPLETED = "completed"
COMPLETED_WITH_ERRORS = "completed_with_errors"
FAILED = "failed"

TERMINAL = frozenset({COMPLETED, COMPLETED_WITH_ERRORS, FAILED})
ORDER = (PENDING, VALIDATING, LOADING, COMPLETED, COMPLETED_WITH_ERRORS, FAILED)


class Counts(msgspec.Struct, kw_only=True):
    total_rows: int = 0
    valid_rows: int = 0
    loaded_rows: int = 0
    failed_rows: int = 0
    chunks_total: int | None = None
    chunks_validated: int = 0
    chunks_loaded: int = 0


class Submitted(msgspec.Struct, frozen=True):
    seq: int
    rows: int
    last: bool


class Validated(msgspec.Struct, frozen=True):
    valid: int
    invalid: int


class Loaded(msgspec.Struct, frozen=True):
    loaded: int
    failed: int


Fact = Submitted | Validated | Loaded


def apply_fact(counts: Counts, fact: Fact) -> Counts:
    """The counts after one new (chunk, stage) fact."""
    new = msgspec.structs.replace(counts)
    match fact:
        case Submitted(seq=seq, rows=rows, last=last):
            new.total_rows += rows
            if last:
                new.chunks_total = seq + 1
        case Validated(valid=valid, invalid=invalid):
            new.valid_rows += valid
            new.failed_rows += invalid
            new.chunks_validated += 1
        case Loaded(loaded=loaded, failed=failed):
            new.loaded_rows += loaded
            new.failed_rows += failed
            new.chunks_loaded += 1
    return new


def status_of(counts: Counts) -> str:
    """The status implied by counts, once at least one fact has been applied."""
    total = counts.chunks_total
    if total is not None and counts.chunks_loaded >= total and counts.chunks_validated >= total:
        if counts.failed_rows == 0:
            return COMPLETED
        if counts.loaded_rows == 0:
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
