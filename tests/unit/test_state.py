"""The import state machine."""

from __future__ import annotations

from services.auditor.state import (
    Counts,
    Loaded,
    Submitted,
    Validated,
    apply_fact,
    next_status,
)
from shared.import_status import (
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    LOADING,
    PENDING,
    VALIDATING,
)


def run(*facts: Submitted | Validated | Loaded) -> list[str]:
    counts, status, seen = Counts(), str(PENDING), list[str]()
    for fact in facts:
        counts = apply_fact(counts, fact)
        status = next_status(status, counts)
        seen.append(status)
    return seen


def test_a_clean_import_walks_every_state() -> None:
    assert run(
        Submitted(0, 10, last=False),
        Validated(10, 0),
        Loaded(10, 0),
        Submitted(1, 5, last=True),
        Validated(5, 0),
        Loaded(5, 0),
    ) == [VALIDATING, VALIDATING, LOADING, LOADING, LOADING, COMPLETED]


def test_errors_make_completed_with_errors_or_failed() -> None:
    assert run(Submitted(0, 10, last=True), Validated(8, 2), Loaded(7, 1))[-1] == (
        COMPLETED_WITH_ERRORS
    )
    assert run(Submitted(0, 3, last=True), Validated(0, 3), Loaded(0, 0))[-1] == FAILED


def test_facts_in_any_order_reach_the_same_end() -> None:
    assert run(Loaded(5, 0), Validated(5, 0), Submitted(0, 5, last=True))[-1] == COMPLETED


def test_a_load_seen_before_its_validation_does_not_finish_the_import() -> None:
    seen = run(Submitted(0, 4, last=True), Loaded(3, 0), Validated(3, 1))
    assert seen == [VALIDATING, LOADING, COMPLETED_WITH_ERRORS]


def test_an_empty_import_completes() -> None:
    assert run(Submitted(0, 0, last=True), Validated(0, 0), Loaded(0, 0))[-1] == COMPLETED


def test_counts_add_up() -> None:
    counts = Counts()
    for fact in (Submitted(0, 10, last=False), Validated(8, 2), Loaded(7, 1)):
        counts = apply_fact(counts, fact)
    assert (counts.total_rows, counts.valid_rows, counts.loaded_rows, counts.failed_rows) == (
        10,
        8,
        7,
        3,
    )
    assert counts.chunks_total is None


def test_terminal_states_are_final_and_states_never_go_back() -> None:
    done = Counts(chunks_total=1, chunks_loaded=1, loaded_rows=1)
    assert next_status(FAILED, done) == FAILED
    assert next_status(LOADING, Counts(chunks_validated=1)) == LOADING


def test_not_final_until_every_chunk_was_seen_submitted() -> None:
    counts = Counts()
    for fact in (
        Validated(1, 0),
        Loaded(1, 0),
        Submitted(1, 1, last=True),
        Validated(1, 0),
        Loaded(1, 0),
    ):
        counts = apply_fact(counts, fact)
    assert next_status(LOADING, counts) == LOADING  # chunk 0's submission not counted yet
    counts = apply_fact(counts, Submitted(0, 1, last=False))
    assert (next_status(LOADING, counts), counts.total_rows) == (COMPLETED, 2)


def test_validate_only_is_final_once_validated() -> None:
    counts = Counts(mode="validate_only")
    for fact in (Submitted(0, 3, last=True), Validated(2, 1)):
        counts = apply_fact(counts, fact)
    assert next_status(VALIDATING, counts) == COMPLETED_WITH_ERRORS
    rejected = apply_fact(
        apply_fact(Counts(mode="validate_only"), Submitted(0, 1, last=True)), Validated(0, 1)
    )
    assert next_status(VALIDATING, rejected) == FAILED
