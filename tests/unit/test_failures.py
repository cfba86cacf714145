"""The one classification of failures: transient ones are retried (for a bounded time),
permanent ones are dead-lettered at once, and an API answers 503 for an unavailable
dependency."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownTopicOrPartitionError

from shared.errors import ConfigError, InvalidEvent, TransientError
from shared.failures import is_transient, is_unavailable


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        KafkaConnectionError(),
        KafkaTimeoutError(),
        UnknownTopicOrPartitionError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.SerializationError("could not serialize"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        TransientError("retry me"),
    ],
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        InvalidEvent("bad shape"),
        ConfigError("X is not set"),
        ValueError("boom"),
        KeyError("column"),
        asyncpg.exceptions.UndefinedTableError("no table"),
        asyncpg.exceptions.UniqueViolationError("duplicate"),
        asyncpg.exceptions.DataError("bad value"),
        asyncpg.exceptions.ClientConfigurationError("bad option"),
    ],
)
def test_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_unavailable_means_a_dependency_is_down() -> None:
    assert is_unavailable(ConnectionRefusedError())
    assert is_unavailable(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert not is_unavailable(asyncpg.exceptions.DeadlockDetectedError("deadlock"))
    assert not is_unavailable(ValueError("bug"))
