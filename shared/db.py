"""PostgreSQL: the connection pool and versioned migrations applied on start."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import asyncpg
import structlog
from asyncpg.connection import LoggedQuery

from shared.errors import TransientError

log = structlog.get_logger(__name__)

# A connection, whether opened directly or borrowed from a pool.
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def text_array(values: Sequence[str]) -> str:
    """`values` as one PostgreSQL array literal, for a parameter written `$n::text::text[]`.
    Sending a chunk's column this way costs a few C-level string passes; as a list,
    asyncpg's array codec inspects every element (about half the time of a 1,000-row
    insert). Text never holds NUL in PostgreSQL, so NUL can stand between the elements
    while they are escaped."""
    if not values:
        return "{}"
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:
        raise ValueError("a text value holds NUL, which PostgreSQL cannot store")
    joined = joined.replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + joined.replace("\x00", '","') + '"}'


async def affected(conn: Conn, sql: str, *args: object) -> int:
    """Run an INSERT, UPDATE or DELETE; how many rows it touched."""
    status = await conn.execute(sql, *args)  # e.g. "DELETE 3"
    return int(status.split()[-1])


# Any fixed number: serialises migrations when several services start at once.
_MIGRATION_LOCK = 0x7469_6465


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every `NNNN_name.sql`, in order."""
    folder = resources.files("shared") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: Conn) -> list[str]:
    """Apply the migrations not yet applied; returns their names."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE SCHEMA IF NOT EXISTS tidegate")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS tidegate.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM tidegate.schema_migrations")
        }
        for version, name, sql in migration_files():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {name} was changed after it was applied")
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO tidegate.schema_migrations (version, name, checksum)"
                " VALUES ($1, $2, $3)",
                version,
                name,
                checksum,
            )
            applied.append(name)
    if applied:
        log.info("migrations applied", migrations=applied)
    return applied


class PoolBusy(TransientError):
    """No connection of the pool came free within the pool's wait: the service is saturated
    (an API answers 503 with Retry-After)."""


class _BoundedAcquire(asyncpg.pool.PoolAcquireContext):
    async def __aenter__(self) -> asyncpg.pool.PoolConnectionProxy:
        try:
            return await super().__aenter__()
        except TimeoutError:
            raise PoolBusy(f"no database connection came free within {self.timeout} s") from None


QueryObserver = Callable[[LoggedQuery], None]


class BoundedPool(asyncpg.Pool):
    """A pool whose `acquire()` waits at most `acquire_timeout` seconds (None: for ever),
    then raises PoolBusy; every statement its connections run is shown to its `observers`
    (the slow-statement log, and tests that check the API's plans)."""

    acquire_timeout: float | None = None

    def __init__(self, *args: Any, slow_seconds: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "init": self._watch})
        self.observers: list[QueryObserver] = []
        self._slow = slow_seconds

    async def _watch(self, conn: asyncpg.Connection) -> None:
        conn.add_query_logger(self._observe)

    def _observe(self, query: LoggedQuery) -> None:
        if self._slow and query.elapsed >= self._slow:
            log.warning(
                "slow statement", seconds=round(query.elapsed, 3), statement=query.query[:500]
            )
        for observer in self.observers:
            observer(query)

    def acquire(self, *, timeout: float | None = None) -> _BoundedAcquire:
        return _BoundedAcquire(self, self.acquire_timeout if timeout is None else timeout)


@asynccontextmanager
async def open_pool(
    dsn: str,
    *,
    application_name: str = "tidegate",
    max_size: int = 10,
    lock_timeout_ms: int = 0,
    acquire_timeout: float | None = None,
    idle_in_transaction_ms: int = 0,
    slow_seconds: float = 0.0,
) -> AsyncIterator[BoundedPool]:
    """A pool whose sessions read timestamps without offset as UTC, plan each statement
    for its values (a plan cached while a target table was empty would scan it whole once
    it holds millions of rows), and give up waiting for a lock after `lock_timeout_ms`
    (0: never), which an import counts as a refused attempt. `acquire_timeout` bounds the
    wait for a connection; `idle_in_transaction_ms` (0: never) makes the server end a
    session whose transaction waits that long on its client. A statement that takes
    `slow_seconds` or longer (0: none) is logged."""
    pool = BoundedPool(
        dsn,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        init_size=None,
        min_size=1,
        max_size=max_size,
        max_queries=50000,
        loop=None,
        connect=None,
        setup=None,
        reset=None,
        slow_seconds=slow_seconds,
        max_inactive_connection_lifetime=300.0,
        server_settings={
            "application_name": application_name,
            "TimeZone": "UTC",
            "plan_cache_mode": "force_custom_plan",
            "lock_timeout": str(lock_timeout_ms),
            "idle_in_transaction_session_timeout": str(idle_in_transaction_ms),
        },
    )
    await pool
    pool.acquire_timeout = acquire_timeout
    try:
        async with pool.acquire(timeout=60) as conn:
            await migrate(conn)
        yield pool
    finally:
        await pool.close()
