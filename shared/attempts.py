"""`auto_retry`: a chunk whose attempt a working database refuses for a passing reason
(deadlock, serialization failure, lock or statement timeout) is tried again, with
exponential backoff and jitter, up to the import's number of attempts; then it fails with
the cause recorded. A database or broker that is unreachable is not an attempt: the
consumer waits for it (shared/kafka/consumer.py) and the reconciler re-drives what is missing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from prometheus_client import Counter

from shared.errors import TidegateError
from shared.failures import is_refused_attempt

log = structlog.get_logger(__name__)
T = TypeVar("T")

ATTEMPTS_REFUSED = Counter(
    "tidegate_chunk_attempts_refused_total",
    "Attempts at a chunk that the database refused for a passing reason, by service and"
    " outcome (retried, exhausted).",
    ["service", "outcome"],
)


class AttemptsExhausted(TidegateError):
    """Every attempt was refused; `cause` is the last refusal."""

    def __init__(self, attempts: int, cause: BaseException) -> None:
        super().__init__(f"gave up after {attempts} attempts: {type(cause).__name__}: {cause}")
        self.attempts = attempts


def backoff(attempt: int, base_seconds: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): doubling, with
    ±50 % jitter so that replicas refused together do not retry together."""
    return float(base_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))  # noqa: S311


async def with_attempts(
    work: Callable[[], Awaitable[T]],
    attempts: int,
    base_seconds: float,
    service: str,
    on_refused: Callable[[int, BaseException], Awaitable[None]] | None = None,
    *,
    first: int = 1,
    cause: BaseException | None = None,
) -> T:
    """`work()`, tried up to `attempts` times while the database refuses it for a passing
    reason; raises AttemptsExhausted after the last. Any other error passes through.
    `on_refused(attempt, error)` hears of every refusal (the import's journal). From
    attempt `first` when earlier ones were made elsewhere (`cause`: the last refusal)."""
    if first > attempts:
        assert cause is not None, "attempts made elsewhere were refused for a cause"
        ATTEMPTS_REFUSED.labels(service, "exhausted").inc()
        raise AttemptsExhausted(attempts, cause)
    for attempt in range(first, attempts + 1):
        try:
            return await work()
        except Exception as exc:
            if not is_refused_attempt(exc):
                raise
            if on_refused is not None:
                await on_refused(attempt, exc)
            if attempt == attempts:
                ATTEMPTS_REFUSED.labels(service, "exhausted").inc()
                raise AttemptsExhausted(attempts, exc) from exc
            delay = backoff(attempt, base_seconds)
            ATTEMPTS_REFUSED.labels(service, "retried").inc()
            log.warning(
                "attempt refused; retrying", attempt=attempt, error=repr(exc), retry_in=delay
            )
            await asyncio.sleep(delay)
    raise AssertionError("attempts must be >= 1")
