"""The fault-injection harness: a stack of its own (embedded PostgreSQL, broker, the four
services as processes) whose parts the tests kill, stop and restart by PID.

Every scenario imports 9,000 rows in chunks of 500 into a table with a primary key and a
unique column, injects its fault mid-import, lets the stack recover on its own and then
checks the true final state: the table row for row against the file, the import's status
and counts, one ledger entry per chunk, and the key's concurrency slot free.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import table_rows, typed, wait_final
from tidegate import client
from tidegate.embedded import EmbeddedBroker, EmbeddedPostgres
from tidegate.keys import create_key
from tidegate.sample_data import TABLE_SQL, rows, write_file
from tidegate.stack import SERVICES, Stack

ROWS = 9_000
CHUNK_SIZE = 500
CHUNKS = ROWS // CHUNK_SIZE
SERVICES_ALL = SERVICES

# Recovery settings of the stack under test: re-drive an import after 5 s without progress
# (the default is 30 s), never give up within a test.
RECOVERY_ENV = {
    "TIDEGATE_STALL_SECONDS": "5",
    "TIDEGATE_RECONCILE_SECONDS": "1",
    "TIDEGATE_GIVE_UP_SECONDS": "600",
    "TIDEGATE_MAX_RECORDS_PER_IMPORT": "100000",
    "TIDEGATE_OUTBOX_POLL_SECONDS": "0.5",
    "TIDEGATE_HEARTBEAT_SECONDS": "1",
    # Two chunks per load transaction at most: an import is loaded in several steps, so
    # a fault can fall between them.
    "TIDEGATE_LOAD_BATCH_ROWS": str(2 * CHUNK_SIZE),
}


@pytest.fixture(scope="package")
def fault_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the fault suite's own, which its tests may stop."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("faults") / "pgdata")
    server.start()
    yield server
    server.stop()


@dataclass
class Scenario:
    stack: Stack
    broker: EmbeddedBroker
    postgres: EmbeddedPostgres
    db: asyncpg.Connection
    table: str
    source: Path
    key: str
    watcher: str = ""  # a key without practical rate limit, for tests that poll

    async def upload(self, path: Path | None = None, table: str | None = None) -> str:
        async with client.session(self.key) as session:
            accepted = await client.upload(
                session,
                self.stack.api_url,
                path or self.source,
                table or self.table,
                {"chunk_size": str(CHUNK_SIZE)},
                progress=False,
            )
        return str(accepted["id"])

    async def rows_loaded(self) -> int:
        return int(await self.db.fetchval(f"SELECT count(*) FROM {self.table}"))

    async def wait_loaded(self, at_least: int, seconds: float = 60) -> int:
        for _ in range(int(seconds / 0.02)):
            loaded = await self.rows_loaded()
            if loaded >= at_least:
                return loaded
            await asyncio.sleep(0.02)
        raise AssertionError(f"fewer than {at_least} rows loaded after {seconds} s")

    def kill(self, name: str) -> None:
        process = self.stack.processes[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self, *names: str) -> None:
        for name in names:
            self.stack.spawn(name)

    async def wait_ready(self, *names: str, seconds: float = 120) -> None:
        """Every service in `names` ready; if not within `seconds`, the failure says what
        each one's /readyz answered and where each was (a py-spy dump of its threads)."""
        waiting = set(names)
        last: dict[str, object] = {}
        for _ in range(int(seconds / 0.5)):
            for name in sorted(waiting):
                try:
                    status, body = await asyncio.to_thread(self.readiness, name, 2)
                except (OSError, ValueError) as exc:  # no answer, or not JSON
                    status, body = 0, repr(exc)
                if status == 200:
                    waiting.discard(name)
                last[name] = body
            if not waiting:
                return
            await asyncio.sleep(0.5)
        report = [f"{name}: {last.get(name)}\n{self.where(name)}" for name in sorted(waiting)]
        raise AssertionError(f"not ready after {seconds} s:\n" + "\n".join(report))

    def where(self, name: str) -> str:
        """What a service's threads are doing now (py-spy dump), for a failure message."""
        spy = Path(sys.executable).with_name("py-spy")
        pid = str(self.stack.processes[name].pid)
        done = subprocess.run(
            [str(spy), "dump", "--pid", pid],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout[-6000:] + done.stderr[-1000:]

    def kill_broker(self) -> None:
        self.broker.kill()

    def readiness(self, name: str, timeout: float = 10) -> tuple[int, Any]:
        """The status and body of a service's `/readyz`."""
        url = f"http://127.0.0.1:{self.stack.ports[name]}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as refused:
            return refused.code, json.load(refused)

    async def reconnect_db(self) -> None:
        await self.db.close()
        self.db = await asyncpg.connect(self.postgres.url)

    async def assert_true_final_state(self, import_id: str, seconds: float = 180) -> Any:
        """Every row exactly once, the import completed with the right counts, one ledger
        entry per chunk, and the key's slot free."""
        final = await wait_final(self.db, import_id, seconds=seconds)
        assert (final["status"], final["total_rows"], final["loaded_rows"]) == (
            "completed",
            ROWS,
            ROWS,
        ), dict(final)
        assert (final["failed_rows"], final["chunks_loaded"]) == (0, CHUNKS)
        assert await table_rows(self.db, self.table) == [typed(r) for r in rows(ROWS)]
        ledger = await self.db.fetchval(
            "SELECT count(*) FROM tidegate.chunk_ledger WHERE import_id = $1",
            uuid.UUID(import_id),
        )
        assert ledger == CHUNKS
        assert final["finished_at"] is not None  # the slot is freed with the final state
        running = await self.db.fetchval(
            "SELECT count(*) FROM tidegate.imports WHERE key_id = $1 AND finished_at IS NULL",
            final["key_id"],
        )
        assert running == 0
        claims = await self.db.fetchval(
            "SELECT count(*) FROM tidegate.import_key_chunks WHERE import_id = $1",
            uuid.UUID(import_id),
        )
        assert claims == 0
        return final


@pytest.fixture
async def scenario(
    fault_postgres: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Scenario]:
    """A fresh broker and services on the fault suite's PostgreSQL, a fresh table and key."""
    url = fault_postgres.start()  # started again if a test left it stopped
    broker = EmbeddedBroker()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.start())
    for name, value in RECOVERY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TIDEGATE_BACKUP_DIR", str(tmp_path / "backups"))
    stack = Stack(tmp_path)
    await asyncio.to_thread(stack.start)
    db = await asyncpg.connect(url)
    table = f"public.faults_{uuid.uuid4().hex[:8]}"
    await db.execute(TABLE_SQL.format(table=table))
    key = await create_key(url, "fault test", "data_manager")
    case = Scenario(
        stack, broker, fault_postgres, db, table, write_file(tmp_path / "rows.csv", ROWS), key
    )
    try:
        yield case
    finally:
        await case.db.close()
        await asyncio.to_thread(stack.stop)
        broker.stop()
