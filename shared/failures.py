"""Which failures are worth retrying: the one classification every consumer and the API use.

Transient: the same work may succeed once a connection, the database or the broker is back
(retried with backoff for a bounded time, then given up visibly). Permanent: retrying
cannot help (dead-lettered at once). Anything not named here is permanent, so an unknown
error never loops.
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError

from shared.errors import TidegateError

# PostgreSQL going away or refusing connections for a while.
_POSTGRES_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # the connection broke or could not be made
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, query cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,  # lock_timeout
    # The client noticed a broken connection mid-operation ("connection is closed",
    # "cannot switch to state …; another operation is in progress" after a server crash).
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def is_transient(exc: BaseException) -> bool:
    """True if the same event may succeed later; False if retrying cannot help."""
    if isinstance(exc, TidegateError):
        return exc.retriable
    if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
        return False  # a misuse of the client, not a dependency that went away
    if isinstance(exc, KafkaError):
        return True  # the broker is unreachable, restarting or electing: all pass
    return isinstance(exc, (OSError, TimeoutError, *_POSTGRES_TRANSIENT))


# A working database refusing one attempt: another attempt may succeed, but the refusal is
# about this work (it counts against `auto_retry`), not about a dependency being away.
REFUSED_ATTEMPT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.QueryCanceledError,  # statement_timeout
)


def is_refused_attempt(exc: BaseException) -> bool:
    return isinstance(exc, REFUSED_ATTEMPT)


def is_unavailable(exc: BaseException) -> bool:
    """A dependency (database or broker) is unreachable: an API answers 503, not 500."""
    return is_transient(exc) and not is_refused_attempt(exc)
