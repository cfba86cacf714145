"""auto_retry's attempts: refusals of a working database are retried with backoff up to
the limit, then reported; anything else passes through at once."""

from __future__ import annotations

import asyncpg
import pytest

from shared.attempts import AttemptsExhausted, backoff, with_attempts


class Flaky:
    def __init__(self, refusals: int, error: type[Exception]) -> None:
        self.calls = 0
        self._refusals = refusals
        self._error = error

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self._refusals:
            raise self._error("refused")
        return "done"


async def test_refusals_are_retried_until_an_attempt_succeeds() -> None:
    work = Flaky(2, asyncpg.exceptions.DeadlockDetectedError)
    assert await with_attempts(work, 3, 0.001, "test") == "done"
    assert work.calls == 3


async def test_the_last_refusal_is_reported_not_retried_forever() -> None:
    work = Flaky(5, asyncpg.exceptions.LockNotAvailableError)
    with pytest.raises(AttemptsExhausted, match="gave up after 3 attempts: LockNotAvailable"):
        await with_attempts(work, 3, 0.001, "test")
    assert work.calls == 3


@pytest.mark.parametrize(
    "error", [asyncpg.exceptions.UniqueViolationError, asyncpg.PostgresConnectionError]
)
async def test_other_errors_are_not_attempts(error: type[Exception]) -> None:
    """A constraint is no passing refusal; a lost connection is waited out by the consumer."""
    work = Flaky(1, error)
    with pytest.raises(error):
        await with_attempts(work, 3, 0.001, "test")
    assert work.calls == 1


def test_backoff_doubles_with_jitter() -> None:
    for attempt in (1, 2, 3):
        for _ in range(50):
            delay = backoff(attempt, 1.0)
            assert 0.5 * 2 ** (attempt - 1) <= delay <= 1.5 * 2 ** (attempt - 1)
