"""Recovery, end to end on the real stack: rollback after commit (content hash before and
after), conflicts and force, dry run, cancel, failed-row export → fix → retry →
reconciliation, retry without a file, atomic imports and rollback on failure."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import bearer, holding_row, load_waiting, wait_final
from tests.e2e.test_import_pipeline import post_csv

API = "/api/v1/database"

PEOPLE = """
CREATE TABLE {t} (id integer PRIMARY KEY, email text UNIQUE, name text NOT NULL,
                  score numeric(6, 2), seen timestamptz);
INSERT INTO {t} VALUES (1, 'one@example.com', 'One', 1.5, '2024-01-01T00:00:00Z'),
                       (2, 'two@example.com', 'Two', NULL, NULL);
"""


@pytest.fixture
async def people(db: asyncpg.Connection) -> str:
    table = f"public.people_{uuid.uuid4().hex[:8]}"
    await db.execute(PEOPLE.format(t=table))
    return table


async def content_hash(db: asyncpg.Connection, table: str) -> str:
    """md5 of every row's text, in a fixed order: equal only for identical tables."""
    value = await db.fetchval(
        f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
    )
    return str(value)


async def wait_operation(
    http: aiohttp.ClientSession, operation_id: str, seconds: float = 60
) -> dict[str, Any]:
    for _ in range(int(seconds / 0.1)):
        async with http.get(f"{API}/operations/{operation_id}") as response:
            assert response.status == 200, await response.text()
            op: dict[str, Any] = await response.json()
        if op["status"] != "pending":
            return op
        await asyncio.sleep(0.1)
    raise AssertionError(f"operation {operation_id} still pending: {op}")


async def post(http: aiohttp.ClientSession, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{API}{path}", params=params) as response:
        return response.status, await response.json(content_type=None)


UPSERT = (
    "id,email,name,score,seen\n"
    "1,one@example.com,One again,9.25,2025-06-01T12:00:00Z\n"
    "3,three@example.com,Three,3,\n"
    "4,four@example.com,Four,,2025-01-01T00:00:00+02:00\n"
)


async def imported(http: aiohttp.ClientSession, db: asyncpg.Connection, table: str) -> str:
    status, answer, _ = await post_csv(http, table, UPSERT, on_duplicate="update")
    assert status == 202, answer
    final = await wait_final(db, answer["id"])
    assert (final["status"], final["loaded_rows"], final["updated_rows"]) == ("completed", 3, 1)
    return str(answer["id"])


async def test_rollback_restores_the_table_exactly(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    before = await content_hash(db, people)
    import_id = await imported(http, db, people)
    assert await content_hash(db, people) != before

    status, plan = await post(http, f"/imports/{import_id}/rollback", dry_run="true")
    assert status == 200, plan
    assert (plan["delete"], plan["restore"], plan["conflicts"]) == (2, 1, 0)
    assert await db.fetchval(f"SELECT count(*) FROM {people}") == 4  # a dry run changes nothing

    once = {"Idempotency-Key": f"rollback-{import_id}"}
    async with http.post(f"{API}/imports/{import_id}/rollback", headers=once) as response:
        assert response.status == 202, await response.text()
        op = await response.json()
    done = await wait_operation(http, op["id"])
    assert done["status"] == "completed", done
    assert (done["result"]["delete"], done["result"]["restore"]) == (2, 1)
    async with http.post(f"{API}/imports/{import_id}/rollback", headers=once) as response:
        replayed = await response.json()  # a retry of the same request: the same operation
        assert (response.status, response.headers["Idempotent-Replayed"]) == (202, "true")
        assert replayed["id"] == op["id"]
    assert await content_hash(db, people) == before
    async with http.get(f"{API}/imports/{import_id}") as response:
        resource = await response.json()
    assert resource["status"] == "rolled_back"
    assert resource["recovery"]["rollback"]["status"] == "completed"

    status, again = await post(http, f"/imports/{import_id}/rollback")
    assert (status, again["type"].rsplit("/", 1)[-1]) == (409, "import-rolled-back")


async def test_rollback_refuses_to_clobber_a_later_change_unless_forced(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    before = await content_hash(db, people)
    import_id = await imported(http, db, people)
    await db.execute(f"UPDATE {people} SET name = 'edited by hand' WHERE id = 3")
    await db.execute(f"DELETE FROM {people} WHERE id = 1")
    changed = await content_hash(db, people)

    status, problem = await post(http, f"/imports/{import_id}/rollback")
    assert status == 409, problem
    assert problem["type"].endswith("/rollback-conflict")
    assert problem["conflicts"] == 2
    assert sorted((c["key"], c["written"], c["now"]) for c in problem["conflict_keys"]) == [
        ([1], "updated", "deleted"),
        ([3], "inserted", "changed"),
    ]
    assert await content_hash(db, people) == changed  # nothing changed

    status, op = await post(http, f"/imports/{import_id}/rollback", force="true")
    assert status == 202, op
    done = await wait_operation(http, op["id"])
    assert (done["status"], done["result"]["overwritten"]) == ("completed", 2), done
    assert await content_hash(db, people) == before


async def test_rollback_waits_for_a_later_import_into_the_same_table(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    import_id = await imported(http, db, people)
    later = uuid.uuid4()
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source)"
        " VALUES ($1, $2, '{id}', 10, 'kafka')",
        later,
        people,
    )
    try:
        status, problem = await post(http, f"/imports/{import_id}/rollback")
        assert status == 409, problem
        assert problem["type"].endswith("/later-import-running")
        assert problem["running"] == [str(later)]
    finally:
        await db.execute("UPDATE tidegate.imports SET finished_at = now() WHERE id = $1", later)


async def test_cancel_stops_the_import_rolls_back_and_frees_the_slot(
    services: Any, make_key: Any, db: asyncpg.Connection, people: str
) -> None:
    token = await make_key("data_manager", concurrent_imports=1, requests_per_minute=10_000)
    before = await content_hash(db, people)
    rows = "".join(f"{i},p{i}@example.com,P{i},{i},\n" for i in range(10, 210))
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as http:
        # A held row with the id of a late line: a load waits on it, so the import is
        # certainly running (and holding chunks it has claimed) when it is cancelled.
        hold = {"id": 200, "email": "hold@example.com", "name": "Hold"}
        async with holding_row(db, people, hold):
            status, answer, _ = await post_csv(
                http, people, "id,email,name,score,seen\n" + rows, chunk_size="10"
            )
            assert status == 202, answer
            await load_waiting(db)
            status, cancelled = await post(http, f"/imports/{answer['id']}/cancel")
            assert status == 202, cancelled
            assert cancelled["import"]["status"] == "cancelled"
        # Released: the waiting load commits, and the rollback (which waits for it) undoes it.
        done = await wait_operation(http, cancelled["rollback"]["id"])
        assert done["status"] == "completed", done
        assert await content_hash(db, people) == before
        # The slot is free: the same key may import again at once.
        status, second, _ = await post_csv(http, people, "id,email,name\n500,x@example.com,X\n")
        assert status == 202, second
        assert (await wait_final(db, second["id"]))["status"] == "completed"
        status, again = await post(http, f"/imports/{answer['id']}/cancel")
        assert status == 409, again
    await asyncio.sleep(0.5)  # chunks still in flight are ignored, not loaded
    final = await db.fetchval(
        "SELECT status FROM tidegate.imports WHERE id = $1", uuid.UUID(answer["id"])
    )
    assert final == "cancelled"
    assert await db.fetchval(f"SELECT count(*) FROM {people} WHERE id BETWEEN 10 AND 209") == 0
    loaded = await db.fetchval(
        "SELECT count(*) FROM tidegate.chunk_ledger WHERE import_id = $1 AND loaded_rows > 0",
        uuid.UUID(answer["id"]),
    )
    assert loaded > 0  # what the waiting load committed was rolled back


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_failed_rows_export_fix_and_retry_reconciles(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    body = (
        "ID,Email,Name,Score,Seen\n"
        "10,ten@example.com,Ten,10,\n"
        "11,eleven@example.com,,11,\n"  # name is required
        "12,twelve@example.com,Twelve,not a number,\n"
    )
    status, answer, _ = await post_csv(http, people, body)
    assert status == 202, answer
    parent = answer["id"]
    final = await wait_final(db, parent)
    assert (final["loaded_rows"], final["failed_rows"]) == (1, 2), dict(final)

    async with http.get(f"{API}/imports/{parent}/failed") as response:
        assert response.status == 200
        assert response.headers["Tidegate-Source-Encoding"] == "utf-8"
        exported = read_csv(await response.text())
    assert exported[0] == [
        "ID",
        "Email",
        "Name",
        "Score",
        "Seen",
        "tidegate_line",
        "tidegate_errors",
    ]
    assert [row[:6] for row in exported[1:]] == [
        ["11", "eleven@example.com", "", "11", "", "3"],
        ["12", "twelve@example.com", "Twelve", "not a number", "", "4"],
    ]
    assert "Name" in exported[1][6] or "name" in exported[1][6]

    # Fix one of the two in the "spreadsheet", upload the file as it is.
    exported[1][2] = "Eleven"
    out = io.StringIO()
    csv.writer(out).writerows(exported)
    async with http.post(
        f"{API}/imports/{parent}/retry", data=out.getvalue(), headers={"Content-Type": "text/csv"}
    ) as response:
        assert response.status == 202, await response.text()
        retry = await response.json()
    assert retry["parent_id"] == parent
    done = await wait_final(db, retry["id"])
    assert (done["loaded_rows"], done["failed_rows"]) == (1, 1)
    async with http.get(f"{API}/imports/{parent}/report") as response:
        report = (await response.json())["reconciliation"]
    assert (report["failed_rows"], report["loaded_by_retries"], report["outstanding"]) == (2, 1, 1)

    # Fix the other one in the retry's own failed rows: the chain resolves both.
    async with http.get(f"{API}/imports/{retry['id']}/failed") as response:
        second = read_csv(await response.text())
    second[1][3] = "12"
    out = io.StringIO()
    csv.writer(out).writerows(second)
    async with http.post(
        f"{API}/imports/{retry['id']}/retry",
        data=out.getvalue(),
        headers={"Content-Type": "text/csv"},
    ) as response:
        assert response.status == 202, await response.text()
        last = await response.json()
    assert (await wait_final(db, last["id"]))["status"] == "completed"
    async with http.get(f"{API}/imports/{parent}/report") as response:
        report = (await response.json())["reconciliation"]
    assert (report["loaded_by_retries"], report["outstanding"]) == (2, 0)
    assert [r["id"] for r in report["retries"]] == [retry["id"], last["id"]]
    stored = await db.fetch(f"SELECT id, name, score FROM {people} WHERE id >= 10 ORDER BY id")
    assert [tuple(r) for r in stored] == [
        (10, "Ten", 10),
        (11, "Eleven", 11),
        (12, "Twelve", 12),
    ]


async def test_retry_without_a_file_once_the_missing_reference_exists(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    suffix = uuid.uuid4().hex[:8]
    teams, members = f"public.teams_{suffix}", f"public.members_{suffix}"
    await db.execute(
        f"CREATE TABLE {teams} (id integer PRIMARY KEY);"
        f"CREATE TABLE {members} (id integer PRIMARY KEY,"
        f" team integer NOT NULL REFERENCES {teams} (id))"
    )
    await db.execute(f"INSERT INTO {teams} VALUES (1)")
    status, answer, _ = await post_csv(http, members, "id,team\n1,1\n2,2\n3,2\n")
    assert status == 202, answer
    final = await wait_final(db, answer["id"])
    assert (final["loaded_rows"], final["failed_rows"]) == (1, 2)

    status, team, _ = await post_csv(http, teams, "id\n2\n")
    assert status == 202
    assert (await wait_final(db, team["id"]))["status"] == "completed"
    async with http.post(f"{API}/imports/{answer['id']}/retry") as response:
        assert response.status == 202, await response.text()
        retry = await response.json()
    assert (await wait_final(db, retry["id"]))["status"] == "completed"
    assert [r["id"] for r in await db.fetch(f"SELECT id FROM {members} ORDER BY id")] == [1, 2, 3]
    async with http.get(f"{API}/imports/{answer['id']}/report") as response:
        report = (await response.json())["reconciliation"]
    assert (report["loaded_by_retries"], report["outstanding"]) == (2, 0)


async def test_an_atomic_import_keeps_nothing_when_a_row_is_rejected(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    before = await content_hash(db, people)
    rows = "".join(f"{i},a{i}@example.com,A{i},1,\n" for i in range(100, 150))
    body = "id,email,name,score,seen\n" + rows + "150,bad@example.com,,1,\n"
    status, answer, _ = await post_csv(http, people, body, atomic="true", chunk_size="10")
    assert status == 202, answer
    final = await wait_final(db, answer["id"])
    assert final["status"] == "failed"
    assert "atomic" in final["error"]
    op_id = await _rollback_of(db, answer["id"])
    assert (await wait_operation(http, op_id))["status"] == "completed"
    assert await content_hash(db, people) == before


async def _rollback_of(db: asyncpg.Connection, import_id: str) -> str:
    for _ in range(100):
        found = await db.fetchval(
            "SELECT id FROM tidegate.operations WHERE import_id = $1 AND kind = 'rollback'",
            uuid.UUID(import_id),
        )
        if found is not None:
            return str(found)
        await asyncio.sleep(0.1)
    raise AssertionError("no rollback was requested")


FLAKY = """
CREATE SEQUENCE {t}_attempts;
CREATE FUNCTION {t}_flaky() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('{t}_attempts') <= {refusals} THEN
        RAISE EXCEPTION 'refused on purpose' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER flaky AFTER INSERT ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {t}_flaky();
"""


@pytest.mark.parametrize(("refusals", "final"), [(2, "completed"), (3, "failed")])
async def test_auto_retry_recovers_within_its_attempts_or_fails_and_rolls_back(
    http: aiohttp.ClientSession, db: asyncpg.Connection, refusals: int, final: str
) -> None:
    table = f"public.flaky_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text)")
    await db.execute(f"INSERT INTO {table} VALUES (1, 'kept')")
    await db.execute(FLAKY.format(t=table, refusals=refusals))
    before = await content_hash(db, table)
    # Two chunks: the first is refused `refusals` times, then the second loads at once.
    await db.execute(f"SELECT setval('{table}_attempts', 1, false)")
    rows = "".join(f"{i},n{i}\n" for i in range(2, 12))
    status, answer, _ = await post_csv(http, table, "id,name\n" + rows, chunk_size="5")
    assert status == 202, answer
    import_id = answer["id"]
    done = await wait_final(db, import_id)
    assert done["status"] == final, dict(done)
    attempts = await db.fetchval(f"SELECT last_value FROM {table}_attempts")
    if final == "completed":
        assert attempts == refusals + 1 + 1  # refused, accepted, the second chunk
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 11
        return
    assert "gave up after 3 attempts" in done["error"]
    assert (await wait_operation(http, await _rollback_of(db, import_id)))["status"] == "completed"
    assert await content_hash(db, table) == before
    # 3 refused attempts (not retried forever), the second chunk, and the rollback's
    # restoring INSERT (of no row, but the trigger is per statement). Counted once the
    # rollback is done: read before, it was 4 or 5 depending on who came first.
    attempts = await db.fetchval(f"SELECT last_value FROM {table}_attempts")
    assert attempts == 3 + 1 + 1


async def test_backup_import_restore_gives_the_same_table_and_a_tampered_file_is_refused(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str, backup_dir: Any
) -> None:
    before = await content_hash(db, people)
    async with http.post(f"{API}/backups", json={"tables": [people], "reason": "test"}) as r:
        assert r.status == 202, await r.text()
        created = await r.json()
    done = await wait_operation(http, created["id"])
    assert done["status"] == "completed", done
    async with http.get(created["backup"]) as r:
        backup = await r.json()
    assert (backup["status"], backup["row_counts"]) == ("completed", {people: 2})
    assert len(backup["sha256"]) == 64 and backup["size_bytes"] > 0
    async with http.get(f"{API}/backups") as r:
        assert backup["id"] in [b["id"] for b in (await r.json())["items"]]

    await imported(http, db, people)
    changed = await content_hash(db, people)
    assert changed != before

    status, op = await post(http, f"/backups/{backup['id']}/restore")
    assert status == 202, op
    restored = await wait_operation(http, op["id"])
    assert restored["status"] == "completed", restored
    assert await content_hash(db, people) == before

    # A corrupted file is refused before anything changes.
    await imported(http, db, people)
    changed = await content_hash(db, people)
    path = backup_dir / backup["file_name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    status, op = await post(http, f"/backups/{backup['id']}/restore")
    assert status == 202, op
    refused = await wait_operation(http, op["id"])
    assert refused["status"] == "refused", refused
    assert "SHA-256" in refused["error"]
    assert await content_hash(db, people) == changed

    async with http.delete(f"{API}/backups/{backup['id']}") as r:
        assert r.status == 202
        deleted = await r.json()
    assert (await wait_operation(http, deleted["id"]))["status"] == "completed"
    assert not path.exists()
    async with http.get(f"{API}/backups/{backup['id']}") as r:
        assert r.status == 404


async def test_backup_before_an_import(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    before = await content_hash(db, people)
    status, answer, _ = await post_csv(http, people, UPSERT, on_duplicate="update", backup="true")
    assert status == 202, answer
    backup_id = answer["options"]["backup_id"]
    assert backup_id is not None
    await wait_final(db, answer["id"])
    async with http.get(f"{API}/backups/{backup_id}") as r:
        backup = await r.json()
    assert (backup["status"], backup["import_id"], backup["row_counts"]) == (
        "completed",
        answer["id"],
        {people: 2},
    )
    status, op = await post(http, f"/backups/{backup_id}/restore")
    assert (await wait_operation(http, op["id"]))["status"] == "completed"
    assert await content_hash(db, people) == before


async def test_without_rollback_on_failure_a_failed_import_keeps_what_it_loaded(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    table = f"public.flaky_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text)")
    await db.execute(FLAKY.format(t=table, refusals=2))
    rows = "".join(f"{i},n{i}\n" for i in range(2, 12))
    status, answer, _ = await post_csv(
        http,
        table,
        "id,name\n" + rows,
        chunk_size="5",
        auto_retry="2",
        rollback_on_failure="false",
    )
    assert status == 202, answer
    assert answer["options"]["auto_retry"] == 2
    done = await wait_final(db, answer["id"])
    assert (done["status"], done["loaded_rows"]) == ("failed", 5), dict(done)
    assert "gave up after 2 attempts" in done["error"]
    await asyncio.sleep(1)  # no rollback comes
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 5
    assert not await db.fetchval(
        "SELECT count(*) FROM tidegate.operations WHERE import_id = $1", uuid.UUID(answer["id"])
    )


async def test_copied_rows_are_told_changed_by_xmin_through_freeze_and_rewrites(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    """New rows go in with COPY and one lineage row per chunk holding the transaction id:
    a row is the import's own while its xmin is that id. VACUUM FREEZE, VACUUM FULL and
    CLUSTER keep it so; any UPDATE (even a no-op) or a rewrite of the rows (as restoring a
    dump does) makes the row count as changed since."""
    body = "id,email,name\n5,five@example.com,Five\n6,six@example.com,Six\n7,,Seven\n"
    status, answer, _ = await post_csv(http, people, body)
    assert status == 202, answer
    import_id = answer["id"]
    assert (await wait_final(db, import_id))["loaded_rows"] == 3
    lineage = await db.fetch(
        "SELECT keys, digests, xid FROM tidegate.load_lineage WHERE import_id = $1", import_id
    )
    assert len(lineage) == 1 and lineage[0]["digests"] is None and lineage[0]["xid"] is not None
    assert sorted(json.loads(lineage[0]["keys"])) == [[5], [6], [7]]
    assert await db.fetchval(f"SELECT email FROM {people} WHERE id = 7") is None  # empty: NULL

    async def plan() -> tuple[int, int, list[Any]]:
        status, found = await post(http, f"/imports/{import_id}/rollback", dry_run="true")
        assert status == 200, found
        keys = sorted((c["key"], c["now"]) for c in found["conflict_keys"])
        return found["conflicts"], found["delete"], keys

    pkey = people.split(".")[1] + "_pkey"
    for rewrite in (
        f"VACUUM (FREEZE) {people}",
        f"VACUUM FULL {people}",
        f"CLUSTER {people} USING {pkey}",
    ):
        await db.execute(rewrite)
        assert await plan() == (0, 3, []), rewrite
    await db.execute(f"UPDATE {people} SET name = name WHERE id = 6")  # a no-op still counts
    assert await plan() == (1, 3, [([6], "changed")])
    await db.execute(
        f"CREATE TEMP TABLE copy_of AS SELECT * FROM {people};"
        f" DELETE FROM {people}; INSERT INTO {people} SELECT * FROM copy_of"
    )  # what restoring a dump does to the rows
    assert await plan() == (3, 3, [([5], "changed"), ([6], "changed"), ([7], "changed")])
