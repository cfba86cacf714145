"""Troubleshooting tools against the running stack: a row's history (`debug record`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from tests.conftest import MakeKey, Running, bearer, holding_row, load_waiting, wait_final
from tests.e2e.test_cli_admin import _cli
from tests.e2e.test_cli_recovery import first_json
from tests.e2e.test_import_pipeline import post_csv


async def test_a_rows_history_shows_both_imports_and_its_previous_values(
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    services: Running,
    make_key: MakeKey,
) -> None:
    table = f"public.history_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text, score int)")
    status, first, _ = await post_csv(http, table, "id,name,score\n7,Seven,1\n42,Old,2\n")
    assert status == 202
    await wait_final(db, first["id"])
    body = "id,name,score\n042,New,3\n"  # the same key, written another way
    status, second, _ = await post_csv(http, table, body, on_duplicate="update")
    assert status == 202
    assert (await wait_final(db, second["id"]))["updated_rows"] == 1

    key = await make_key("data_manager", requests_per_minute=10_000)
    code, out, err = await _cli(
        "debug", "record", "--table", table, "--id", "42", "--api", services.api, key=key
    )
    assert code == 0, err
    history = first_json(out)
    assert history["key"] == {"id": "42"}
    assert history["current"] == {"id": 42, "name": "New", "score": 3}
    writes = history["history"]
    assert [(w["import_id"], w["action"], w["line"], w["chunk"]) for w in writes] == [
        (second["id"], "updated", 2, 0),
        (first["id"], "inserted", 3, 0),
    ]
    assert writes[0]["before"] == {"id": 42, "name": "Old", "score": 2}
    assert writes[0]["uploaded_by"]["prefix"] is not None
    assert history["verification"]["passes"] is True  # the update is the row as it is now

    await db.execute(f"UPDATE {table} SET score = 4 WHERE id = 42")
    code, out, err = await _cli(
        "debug", "record", "--table", table, "--id", "42", "--api", services.api, key=key
    )
    assert code == 0, err
    verdict = first_json(out)["verification"]
    assert verdict["passes"] is False
    assert [(f["check"], f["code"], f["key"]) for f in verdict["findings"]] == [
        ("lineage", "changed_since_import", {"id": 42})
    ]
    async with http.get(
        "/api/v1/database/records", params={"table": table, "id": "nope"}
    ) as response:
        assert response.status == 400
    async with http.get("/api/v1/database/records", params={"table": table, "id": "9"}) as r:
        assert (await r.json())["current"] is None


async def test_logs_follow_sees_a_live_import_and_ends_on_its_final_state(
    http: aiohttp.ClientSession, db: asyncpg.Connection, services: Running, make_key: MakeKey
) -> None:
    table = f"public.live_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text)")
    key = await make_key("data_manager", requests_per_minute=10_000)
    # A held row with the id of the last line: the import is loading until it is released.
    async with holding_row(db, table, {"id": 100, "name": "Hold"}):
        async with aiohttp.ClientSession(base_url=services.api, headers=bearer(key)) as mine:
            rows = "".join(f"{i},n{i}\n" for i in range(1, 101))
            status, answer, _ = await post_csv(mine, table, "id,name\n" + rows, chunk_size="10")
        assert status == 202
        follower = asyncio.create_task(
            _cli("logs", "--last", "--follow", "--api", services.api, key=key)
        )
        await load_waiting(db)
        await asyncio.sleep(0.5)
        running = await db.fetchval(
            "SELECT finished_at IS NULL FROM tidegate.imports WHERE id = $1",
            uuid.UUID(answer["id"]),
        )
        assert running  # the stream started while the import was loading
    code, out, err = await asyncio.wait_for(follower, 60)
    assert code == 0, err
    lines = out.splitlines()
    loaded = [ln for ln in lines if " chunk_loaded chunk " in ln]
    assert len(loaded) == 10
    assert "accepted" in lines[0]
    assert " finished " in lines[-1] and "status=completed" in lines[-1]

    async with http.get(f"/api/v1/database/imports/{answer['id']}/events") as response:
        items = (await response.json())["items"]
    assert [e["kind"] for e in items].count("chunk_validated") == 10
    assert any(e["kind"] == "status" and e["detail"]["status"] == "completed" for e in items)
    resumed_from = items[-3]["id"]
    async with http.get(
        f"/api/v1/database/imports/{answer['id']}/events",
        headers={"Accept": "text/event-stream", "Last-Event-ID": resumed_from},
    ) as response:
        stream = await response.text()
    resent = [ln[4:] for ln in stream.splitlines() if ln.startswith("id: ")]
    assert resumed_from not in resent
    assert items[-1]["id"] in resent and stream.rstrip().endswith("data: {}")


async def test_a_chunks_stages_are_in_causal_order_whenever_the_auditor_counted_them(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """The auditor may count a chunk's loaded before its validated (different topics); the
    timeline still shows each chunk submitted, then validated, then loaded (issue 21)."""
    table = f"public.order_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text)")
    rows = "".join(f"{i},n{i}\n" for i in range(1, 31))
    status, answer, _ = await post_csv(http, table, "id,name\n" + rows, chunk_size="10")
    assert status == 202
    await wait_final(db, answer["id"])
    # As when the auditor took chunk.loaded before chunk.validated: counted an hour apart.
    await db.execute(
        "UPDATE tidegate.chunk_progress SET recorded_at = recorded_at - interval '1 hour'"
        " WHERE import_id = $1 AND stage IN ('loaded', 'submitted')",
        uuid.UUID(answer["id"]),
    )
    async with http.get(f"/api/v1/database/imports/{answer['id']}/events") as response:
        items = (await response.json())["items"]
    kinds = [e["kind"] for e in items]
    assert kinds[0] == "accepted" and kinds[-1] == "finished"
    for seq in range(3):
        stages = [e["kind"] for e in items if e["seq"] == seq and e["kind"].startswith("chunk_")]
        assert stages == ["chunk_submitted", "chunk_validated", "chunk_loaded"], (seq, kinds)
    times = [e["at"] for e in items[:-1]]
    assert times == sorted(times)  # the services' own times: in order


RULES = """format = "tidegate.rules/v1"
[columns.email]
format = "email"
[columns.name]
required = true
[[keys]]
columns = ["email"]
case_insensitive = true
[[associations]]
columns = ["team"]
references = "{teams}"
to = ["id"]
"""


async def test_verify_data_finds_each_planted_problem_and_passes_a_clean_table(
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    services: Running,
    make_key: MakeKey,
    rules_dir: Path,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    members, teams, clean = (f"public.{n}_{suffix}" for n in ("members", "teams", "clean"))
    await db.execute(f"CREATE TABLE {teams} (id integer PRIMARY KEY)")
    await db.execute(f"INSERT INTO {teams} VALUES (1)")
    await db.execute(
        f"CREATE TABLE {members} (id integer PRIMARY KEY, email text, name text, team integer)"
    )
    await db.execute(f"CREATE TABLE {clean} (id integer PRIMARY KEY, note text)")
    (rules_dir / f"{members}.toml").write_text(RULES.format(teams=teams))
    body = "id,email,name,team\n" + "".join(f"{i},m{i}@example.com,M{i},1\n" for i in range(1, 11))
    status, answer, _ = await post_csv(http, members, body)
    assert status == 202
    assert (await wait_final(db, answer["id"]))["status"] == "completed"
    status, answer, _ = await post_csv(http, clean, "id,note\n1,fine\n2,\n")
    assert (await wait_final(db, answer["id"]))["status"] == "completed"
    # Planted, by hand, past every import check:
    await db.execute(f"UPDATE {members} SET name = NULL WHERE id = 2")  # rule-required
    await db.execute(f"UPDATE {members} SET email = 'not-an-email' WHERE id = 3")  # format
    await db.execute(f"UPDATE {members} SET team = 99 WHERE id = 4")  # orphan association
    await db.execute(f"DELETE FROM {members} WHERE id = 5")  # gone since its import
    await db.execute(f"UPDATE {members} SET email = 'M6@Example.COM' WHERE id = 7")  # key

    key = await make_key("viewer", requests_per_minute=10_000)
    report = tmp_path / "verify.json"
    code, out, err = await _cli(
        "verify-data", "--table", members, "--table", clean, "--report", str(report),
        "--format", "json", "--api", services.api, key=key,
    )  # fmt: skip
    assert code == 1, err  # a check failed
    verification = first_json(out)
    assert verification["passed"] is False
    found, tidy = verification["result"]
    assert (found["table"], tidy["table"]) == (members, clean)
    assert (found["total_records"], found["failed_records"], found["duplicate_count"]) == (9, 2, 1)
    # The import report's shapes (issue 21)
    assert found["missing_required_fields"] == [{"field": "name", "count": 1}]
    assert found["invalid_format_fields"] == [{"field": "email", "count": 1}]
    # lineage: rows 2, 3, 4 and 7 changed since their import, row 5 deleted
    assert found["checks"] == {"rules": 2, "duplicates": 1, "associations": 1, "lineage": 5}
    by_check = {(f["check"], f["code"], str(f["key"])) for f in found["sample"]}
    assert ("associations", "missing_reference", "{'id': 4}") in by_check
    assert ("lineage", "deleted_since_import", "{'id': 5}") in by_check
    assert ("rules", "invalid_email", "{'id': 3}") in by_check
    assert ("duplicates", "duplicate_in_table", "{'email': 'm6@example.com'}") in by_check
    duplicate = next(f for f in found["sample"] if f["check"] == "duplicates")
    assert duplicate["rows"] == [{"id": 6}, {"id": 7}]  # the keys of the rows involved
    assert tidy["total_records"] == 2 and not any(tidy["checks"].values())
    written = report.with_suffix(".md").read_text()
    assert written.count("## public.") == 2
    assert "| name: 1 |" in written and "| email: 1 |" in written
    assert "| id = 4 |" in written and "{'id'" not in written  # values, not Python reprs
    assert "id = 6; id = 7" in written
    assert json.loads(report.read_text())["id"] == verification["id"]

    code, out, err = await _cli("verify-data", "--table", clean, "--api", services.api, key=key)
    assert code == 0, err + out
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "2/2" in final and "completed" in final, err  # it counts the rows it checked
    async with http.get("/api/v1/database/verifications", params={"table": clean}) as response:
        history = (await response.json())["items"]
    assert [v["passed"] for v in history[:2]] == [True, False]  # the table's history


async def test_a_long_verification_does_not_hold_up_imports(
    http: aiohttp.ClientSession, db: asyncpg.Connection, database_url: str
) -> None:
    """verify-data has a consumer group of its own: while a verification waits (here on a
    lock another session holds on its table), an import into another table completes."""
    suffix = uuid.uuid4().hex[:8]
    held, other = f"public.held_{suffix}", f"public.other_{suffix}"
    await db.execute(f"CREATE TABLE {held} (id integer PRIMARY KEY)")
    await db.execute(f"CREATE TABLE {other} (id integer PRIMARY KEY)")
    locker = await asyncpg.connect(database_url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute(f"LOCK TABLE {held} IN ACCESS EXCLUSIVE MODE")
        async with http.post("/api/v1/database/verifications", json={"tables": [held]}) as r:
            assert r.status == 202
            verification = await r.json()
        await asyncio.sleep(1)  # the validator is now waiting on the lock
        status, answer, _ = await post_csv(http, other, "id\n1\n2\n")
        assert status == 202
        assert (await wait_final(db, answer["id"], 30))["status"] == "completed"
        async with http.get(verification["links"]["self"]) as r:
            assert (await r.json())["status"] == "pending"
        await transaction.rollback()
    finally:
        await locker.close()
    for _ in range(100):
        async with http.get(verification["links"]["self"]) as r:
            verification = await r.json()
        if verification["status"] != "pending":
            break
        await asyncio.sleep(0.2)
    assert (verification["status"], verification["passed"]) == ("completed", True)
