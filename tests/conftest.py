"""Session fixtures: the embedded PostgreSQL and broker (or DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS when set), and the four services running in this process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from aiohttp import web

from services.auditor.app import create_app as auditor_app
from services.gateway.app import create_app as gateway_app
from services.loader.app import create_app as loader_app
from services.validator.app import create_app as validator_app
from shared import key_store
from shared.config import Settings, load_settings
from shared.db import migrate
from shared.import_status import TERMINAL as FINAL
from shared.kafka.admin import ensure_topics
from shared.logging import configure_logging
from tidegate.embedded import EmbeddedBroker, EmbeddedPostgres
from tidegate.sample_data import HEADER, TABLE_SQL
from tidegate.stack import Stack

BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    broker = EmbeddedBroker()
    yield broker.start()
    broker.stop()


@pytest.fixture(scope="session")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The services' TIDEGATE_RULES_DIR: tests write `<schema>.<table>.toml` files here."""
    return tmp_path_factory.mktemp("rules")


@pytest.fixture(scope="session")
def backup_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The services' TIDEGATE_BACKUP_DIR."""
    return tmp_path_factory.mktemp("backups")


@pytest.fixture(scope="session")
def settings_for(
    database_url: str, bootstrap: str, rules_dir: Path, backup_dir: Path
) -> Callable[[str], Settings]:
    def make(service: str) -> Settings:
        return load_settings(
            service,
            {
                "DATABASE_URL": database_url,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "PORT": "0",
                "TIDEGATE_OUTBOX_POLL_SECONDS": "0.2",
                "LOG_LEVEL": "warning",
                "TIDEGATE_RULES_DIR": str(rules_dir),
                "TIDEGATE_BACKUP_DIR": str(backup_dir),
            },
        )

    return make


@dataclass
class Running:
    api: str
    apps: dict[str, web.Application]


@pytest.fixture(scope="session")
async def services(settings_for: Callable[[str], Settings]) -> AsyncIterator[Running]:
    """gateway, validator, loader and auditor as aiohttp apps on this event loop."""
    configure_logging("warning")
    await ensure_topics(settings_for("gateway").kafka_bootstrap_servers, 6)
    runners: list[web.AppRunner] = []
    apps: dict[str, web.Application] = {}
    ports: dict[str, int] = {}
    for name, create in (
        ("gateway", gateway_app),
        ("validator", validator_app),
        ("loader", loader_app),
        ("auditor", auditor_app),
    ):
        app = create(settings_for(name))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        apps[name] = app
        ports[name] = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        for name, port in ports.items():  # consumers joined their groups
            for _ in range(300):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    if answer.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{name} did not become healthy")
    yield Running(api=f"http://127.0.0.1:{ports['gateway']}", apps=apps)
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url, server_settings={"TimeZone": "UTC"})
    await migrate(conn)
    yield conn
    await conn.close()


MakeKey = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
async def make_key(db: asyncpg.Connection) -> MakeKey:
    """`await make_key(role, **spec)` → the token of a new API key."""

    async def make(role: str = "admin", **spec: Any) -> str:
        name = spec.pop("name", f"test {role}")
        key_spec = msgspec.convert({"name": name, "role": role, **spec}, key_store.KeySpec)
        _, token = await key_store.create_key(db, key_spec, created_by=None)
        return token

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
async def admin_token(make_key: MakeKey) -> str:
    """An admin key without practical limits, for tests that are not about limits."""
    return await make_key("admin", requests_per_minute=1_000_000, concurrent_imports=100)


@pytest.fixture(scope="session")
async def http(services: Running, admin_token: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(admin_token)) as session:
        yield session


@pytest.fixture
async def customers(db: asyncpg.Connection, services: Running) -> str:
    """A fresh customers-shaped target table; returns its `schema.name`."""
    name = f"customers_{uuid.uuid4().hex[:8]}"
    await db.execute(TABLE_SQL.format(table=f"public.{name}"))
    return f"public.{name}"


@pytest.fixture
async def nothing_stored(db: asyncpg.Connection) -> AsyncIterator[None]:
    """The test stores no import and no outbox event."""
    query = "SELECT (SELECT count(*) FROM tidegate.imports), (SELECT count(*) FROM tidegate.outbox)"
    before = await db.fetchrow(query)
    yield
    assert await db.fetchrow(query) == before


async def unfinished_import(db: asyncpg.Connection, table: str, *, team: str | None = None) -> str:
    """An import that has not finished (as one produced upstream and never completed);
    `team`'s when given."""
    import_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source, team)"
        " VALUES ($1, $2, '{id}', 1, 'kafka', $3)",
        import_id,
        table,
        team,
    )
    return str(import_id)


@contextlib.asynccontextmanager
async def holding_row(
    db: asyncpg.Connection, table: str, row: Mapping[str, object]
) -> AsyncIterator[None]:
    """An uncommitted `row` of `table` while the block runs: the load of the chunk that
    brings a row with its key waits on it (with every chunk loaded in the same
    transaction), so an import is certainly seen half-way, however fast the rest goes.
    Rolled back at the end."""
    holding = db.transaction()
    await holding.start()
    try:
        names = ", ".join(row)
        places = ", ".join(f"${i}" for i in range(1, len(row) + 1))
        await db.execute(f"INSERT INTO {table} ({names}) VALUES ({places})", *row.values())
        yield
    finally:
        await holding.rollback()


def holding_id(
    db: asyncpg.Connection, table: str, row_id: int
) -> contextlib.AbstractAsyncContextManager[None]:
    """`holding_row` of a customers row with `row_id`."""
    hold = {
        "id": row_id,
        "name": "Hold",
        "email": "hold@example.com",
        "signup_date": date(2024, 1, 1),
        "active": True,
    }
    return holding_row(db, table, hold)


async def load_waiting(db: asyncpg.Connection, seconds: float = 30) -> None:
    """Until a load waits on another transaction: on a row `holding_row` holds. (While
    COPY streams in, pg_stat_activity shows the connection's previous statement.)"""
    for _ in range(int(seconds / 0.05)):
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND wait_event = 'transactionid'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    activity = await db.fetch(
        "SELECT wait_event_type, wait_event, state, left(query, 60) AS query"
        " FROM pg_stat_activity WHERE datname = current_database()"
    )
    raise AssertionError(
        f"no load waited on a held row within {seconds} s: {[dict(r) for r in activity]}"
    )


async def wait_final(db: asyncpg.Connection, import_id: str, seconds: float = 60) -> Any:
    for _ in range(int(seconds / 0.1)):
        row = await db.fetchrow(
            "SELECT * FROM tidegate.imports WHERE id = $1", uuid.UUID(import_id)
        )
        if row is not None and row["status"] in FINAL:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"import {import_id} not final after {seconds}s: {row!r}")


def typed(row: list[str]) -> tuple[Any, ...]:
    """What PostgreSQL should hold for a generated row."""
    return (
        int(row[0]),
        row[1],
        row[2],
        row[3] or None,
        date.fromisoformat(row[4]),
        Decimal(row[5]),
        BOOLEANS[row[6].lower()],
        datetime.fromisoformat(row[7]),
        row[8] or None,
    )


async def table_rows(db: asyncpg.Connection, table: str) -> list[tuple[Any, ...]]:
    records = await db.fetch(f"SELECT {', '.join(HEADER)} FROM {table} ORDER BY id")
    return [tuple(r) for r in records]


def system_tool(name: str, package: str) -> str:
    """The path of a Debian program a test needs (scripts/system-deps.sh installs it): in
    CI its absence fails the test; elsewhere the test is skipped, saying what is missing."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing (scripts/system-deps.sh installs {package})")
        pytest.skip(f"{name} is not installed; run scripts/system-deps.sh as root ({package})")
    return found


async def gateway_process(home: Path, database_url: str, bootstrap: str, **env: str) -> Stack:
    """A gateway of its own, as a process, on the session's database and broker; `env`
    adds to its environment."""
    stack = Stack(home)
    stack.database_url, stack.bootstrap = database_url, bootstrap
    stack.env.update(env)
    (home / "logs").mkdir()
    stack.spawn("gateway")
    await asyncio.to_thread(stack.wait_healthy, ("gateway",))
    return stack


async def second_gateway(settings: Settings) -> tuple[web.AppRunner, str]:
    """Another gateway replica on the same database and broker: its runner and address
    (`await runner.cleanup()` ends it)."""
    runner = web.AppRunner(gateway_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
