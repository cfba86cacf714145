"""The loader SIGKILLed in the middle of a rollback and of a restore: the operation's
transaction dies with it (a restore's psql dies with the loader), nothing is half done,
and after a restart the operation finishes on its own with the right table."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.faults.conftest import ROWS, Scenario
from tidegate import client
from tidegate.keys import create_key

DB = "/api/v1/database"
SLOW = """
CREATE FUNCTION {name}_slow() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
CREATE TRIGGER slow_{when} AFTER {when} ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {name}_slow();
"""


async def _content(scenario: Scenario) -> tuple[int, str]:
    row = await scenario.db.fetchrow(
        "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
        f" FROM {scenario.table} t"
    )
    assert row is not None
    return int(row[0]), str(row[1])


async def _slow_down(scenario: Scenario, when: str) -> None:
    name = scenario.table.split(".")[1]
    await scenario.db.execute(SLOW.format(name=name, when=when, table=scenario.table))


async def _sleeping(scenario: Scenario) -> None:
    """Until a statement of the operation sits in the slow trigger."""
    for _ in range(600):
        if await scenario.db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the operation never reached its slow statement")


async def _request(
    scenario: Scenario, method: str, path: str, key: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    async with client.session(key or scenario.key) as session:
        return await client.call(session, method, f"{scenario.stack.api_url}{DB}{path}", **kwargs)


async def _finished(scenario: Scenario, operation_id: str, seconds: float = 120) -> Any:
    for _ in range(int(seconds / 0.2)):
        row = await scenario.db.fetchrow(
            "SELECT status, error, result FROM tidegate.operations WHERE id = $1",
            uuid.UUID(operation_id),
        )
        if row is not None and row["status"] != "pending":
            return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"operation {operation_id} still pending after {seconds} s")


async def _kill_loader(scenario: Scenario, operation_id: str) -> None:
    """SIGKILL the loader; its sessions (and a restore's psql) die with it."""
    scenario.kill("loader")
    await asyncio.sleep(4)  # the slow statement ends, finds no client, and rolls back
    status = await scenario.db.fetchval(
        "SELECT status FROM tidegate.operations WHERE id = $1", uuid.UUID(operation_id)
    )
    assert status == "pending"  # nothing recorded: the transaction died with the loader


async def _restart_loader(scenario: Scenario) -> None:
    scenario.restart("loader")
    await scenario.wait_ready("loader")


async def test_the_loader_killed_mid_rollback(scenario: Scenario) -> None:
    empty = await _content(scenario)
    import_id = await scenario.upload()
    await scenario.assert_true_final_state(import_id)
    await _slow_down(scenario, "DELETE")
    op = await _request(scenario, "POST", f"/imports/{import_id}/rollback")
    await _sleeping(scenario)
    await _kill_loader(scenario, op["id"])
    assert await scenario.rows_loaded() == ROWS  # nothing half-deleted
    await _restart_loader(scenario)
    done = await _finished(scenario, op["id"])
    assert done["status"] == "completed", dict(done)
    assert await _content(scenario) == empty
    status = await scenario.db.fetchval(
        "SELECT status FROM tidegate.imports WHERE id = $1", uuid.UUID(import_id)
    )
    assert status == "rolled_back"


async def test_the_loader_killed_mid_restore(scenario: Scenario) -> None:
    import_id = await scenario.upload()
    await scenario.assert_true_final_state(import_id)
    backed_up = await _content(scenario)
    op = await _request(scenario, "POST", "/backups", json={"tables": [scenario.table]})
    backup = await _finished(scenario, op["id"])
    assert backup["status"] == "completed", dict(backup)
    backup_id = op["backup_id"]
    await scenario.db.execute(f"DELETE FROM {scenario.table} WHERE id % 3 = 0")
    changed = await _content(scenario)
    await _slow_down(scenario, "INSERT")
    admin = await create_key(scenario.postgres.url, "fault admin", "admin")  # restores
    op = await _request(scenario, "POST", f"/backups/{backup_id}/restore", admin)
    await _sleeping(scenario)
    await _kill_loader(scenario, op["id"])
    assert await _content(scenario) == changed  # nothing half-restored
    await _restart_loader(scenario)
    restored = await _finished(scenario, op["id"])
    assert restored["status"] == "completed", dict(restored)
    assert await _content(scenario) == backed_up != changed
