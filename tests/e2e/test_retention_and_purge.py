"""Nothing kept for ever (issue 19, item 13): what a finished import leaves behind is
forgotten after its retention, kind by kind, in bounded passes; and `tidegate purge`
removes a table's rows, or one row's, from every copy tidegate keeps."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import asyncpg

from shared.events import ChunkSubmitted, decode
from shared.retention import Retention, sweep
from tests.conftest import Running, wait_final
from tests.e2e.test_cli_admin import _cli
from tests.e2e.test_import_pipeline import post_csv
from tidegate.sample_data import HEADER

ROW = "{i},Name {i},person{i}@example.com,Oslo,2024-01-0{d},10.50,yes,2024-01-02T03:04:05Z,"


def _file(ids: range, bad: int | None = None) -> str:
    lines = [",".join(HEADER)]
    for i in ids:
        line = ROW.format(i=i, d=1 + i % 9)
        if i == bad:
            line = line.replace("2024-01-0", "2024-13-0")  # an impossible date
        lines.append(line)
    return "\n".join(lines) + "\n"


async def _import(http: aiohttp.ClientSession, db: asyncpg.Connection, table: str, body: str,
                  **params: str) -> uuid.UUID:  # fmt: skip
    status, answer, _ = await post_csv(http, table, body, chunk_size="3", **params)
    assert status == 202, answer
    await wait_final(db, answer["id"])
    return uuid.UUID(answer["id"])


async def _kept(db: asyncpg.Connection, import_id: uuid.UUID) -> dict[str, int]:
    """Rows each store keeps of the import."""
    counts = {}
    for table in ("chunks", "load_lineage", "row_images", "row_errors", "chunk_progress",
                  "chunk_ledger", "chunk_verdicts", "import_journal"):  # fmt: skip
        counts[table] = await db.fetchval(
            f"SELECT count(*) FROM tidegate.{table} WHERE import_id = $1",
            import_id,
        )
    return counts


async def test_each_kind_is_forgotten_after_its_retention(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    """Three imports that finished 10, 40 and 100 days ago, and one still running: with
    chunks kept 7 days, lineage 30 and diagnostics 90, the first loses its chunk copies, the
    second its lineage too (it can no longer be rolled back: 409), the third everything but
    its own row; the running one keeps all. Its failed rows are then gone (410)."""
    ids = [
        await _import(http, db, customers, _file(range(n * 10, n * 10 + 7), bad=n * 10 + 1))
        for n in (1, 2, 3)
    ]
    updated = await _import(
        http, db, customers, _file(range(20, 23)), on_duplicate="update"
    )  # row images: the rows it updated, as they were
    for import_id, days in zip([*ids, updated], (10, 40, 100, 40), strict=True):
        await db.execute(
            "UPDATE tidegate.imports SET finished_at = now() - make_interval(days => $2)"
            " WHERE id = $1",
            import_id,
            days,
        )
    running = uuid.uuid4()
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source,"
        " created_at) VALUES ($1, $2, '{id}', 1, 'http', now() - interval '200 days')",
        running,
        customers,
    )
    await db.execute(
        "INSERT INTO tidegate.row_errors (import_id, seq, stage, line, code, message)"
        " VALUES ($1, 0, 'validated', 2, 'invalid_date', 'not a date')",
        running,
    )
    before = {i: await _kept(db, i) for i in [*ids, updated]}
    assert all(before[i]["chunks"] and before[i]["load_lineage"] for i in ids)
    assert before[updated]["row_images"] > 0

    gone = await sweep(db, Retention(chunks=7, lineage=30, diagnostics=90))
    assert gone["imports"] >= 5  # 10 d: chunks; 40 d: chunks, lineage (two); 100 d: all

    ten, forty, hundred = [await _kept(db, i) for i in ids]
    assert ten["chunks"] == 0 and ten["load_lineage"] > 0 and ten["row_errors"] > 0
    assert forty["chunks"] == forty["load_lineage"] == 0 and forty["row_errors"] > 0
    assert (await _kept(db, updated))["row_images"] == 0
    assert all(count == 0 for count in hundred.values()), hundred
    assert (
        await db.fetchval("SELECT count(*) FROM tidegate.row_errors WHERE import_id = $1", running)
        == 1
    )  # an unfinished import keeps everything
    final = await db.fetchrow("SELECT status, loaded_rows FROM tidegate.imports WHERE id = $1",
                              ids[2])  # fmt: skip
    assert final is not None and final["loaded_rows"] == 6  # its own row and counts stay

    base = "/api/v1/database/imports"
    async with http.post(f"{base}/{ids[1]}/rollback", params={"dry_run": "true"}) as refused:
        problem = await refused.json(content_type=None)
        assert (refused.status, problem["type"]) == (409, "/problems/lineage-expired")
    async with http.post(f"{base}/{ids[0]}/rollback", params={"dry_run": "true"}) as allowed:
        assert allowed.status == 200  # 10 days: its lineage is kept
    async with http.get(f"{base}/{ids[0]}/failed") as failed:
        problem = await failed.json(content_type=None)
        assert (failed.status, problem["type"]) == (410, "/problems/chunks-expired")
    again = await sweep(db, Retention(chunks=7, lineage=30, diagnostics=90))
    assert again["imports"] == 0  # nothing left to do: a pass is idempotent


async def test_a_pass_stops_within_its_budget(db: asyncpg.Connection, customers: str) -> None:
    """A backlog of 60 expired imports: a pass with no time to spare handles one batch
    and leaves the rest to the next pass."""
    ids = [uuid.uuid4() for _ in range(60)]
    await db.executemany(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source, status,"
        " finished_at) VALUES ($1, $2, '{id}', 1, 'http', 'completed',"
        " now() - interval '400 days')",
        [(i, customers) for i in ids],
    )
    first = await sweep(db, Retention(chunks=0, lineage=0, diagnostics=90), budget_seconds=0.0)
    assert first["imports"] == 0  # no time at all: nothing started
    done = 0
    for _ in range(10):
        done += (await sweep(db, Retention(chunks=0, lineage=0, diagnostics=90), 0.001))["imports"]
    left = await db.fetchval(
        "SELECT count(*) FROM tidegate.imports WHERE id = ANY($1::uuid[])"
        " AND diagnostics_purged_at IS NULL",
        ids,
    )
    assert done + left == 60 and done >= 20  # batches of 20, one per pass at least


def _payload_ids(payloads: list[Any]) -> set[str]:
    found = set()
    for payload in payloads:
        chunk = decode(payload)
        assert isinstance(chunk, ChunkSubmitted)
        found |= {row[0] for row in chunk.rows}
    return found


async def test_purge_removes_one_row_then_a_table_from_every_copy(
    services: Running,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    customers: str,
    admin_token: str,
) -> None:
    first = await _import(http, db, customers, _file(range(1, 7), bad=5))
    second = await _import(http, db, customers, _file(range(2, 4)), on_duplicate="update")
    async with http.post("/api/v1/database/backups", json={"tables": [customers]}) as made:
        assert made.status == 202
    ids = [first, second]

    async def payloads() -> list[Any]:
        return [
            r["payload"]
            for r in await db.fetch(
                "SELECT payload FROM tidegate.chunks WHERE import_id = ANY($1::uuid[])", ids
            )
        ]

    async def lineage_keys(store: str) -> list[Any]:
        rows = await db.fetch(
            f"SELECT keys FROM tidegate.{store} WHERE import_id = ANY($1::uuid[])"
            " AND keys IS NOT NULL",
            ids,
        )
        return [k for r in rows for k in json.loads(r["keys"])]

    assert "2" in _payload_ids(await payloads())
    assert [2] in await lineage_keys("load_lineage") and [2] in await lineage_keys("row_images")

    # One row (the person with id 2), from the command line: an admin's.
    api = ("--api", services.api)
    code, out, err = await _cli(
        "purge", "--table", customers, "--key", "id=2", *api, key=admin_token
    )
    assert code == 0, err
    purged = json.loads(out)
    assert purged["key_columns"] == ["id"] and purged["imports"] == 2
    assert purged["removed"]["chunks"] == 2  # its row in each import's chunks
    assert len(purged["backups_holding"]) == 1  # a backup file cannot be edited: listed
    assert "2" not in _payload_ids(await payloads())
    assert {"1", "3", "4", "5", "6"} <= _payload_ids(await payloads())
    assert [2] not in await lineage_keys("load_lineage")
    assert [2] not in await lineage_keys("row_images") and [3] in await lineage_keys("row_images")
    images = await db.fetch("SELECT before FROM tidegate.row_images WHERE import_id = $1", second)
    assert all(row["id"] != 2 for r in images for row in json.loads(r["before"]))
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.audit_log WHERE action = 'purges.create'"
            " AND detail::text LIKE '%person2%'"
        )
        == 0
    )  # the audit log holds the key's columns, never its values
    async with http.get(
        "/api/v1/database/records", params={"table": customers, "id": "2"}
    ) as record:
        assert record.status == 200
        assert (await record.json())["history"] == []  # no import is said to have written it

    # The whole table, and its backups.
    async with http.post(
        "/api/v1/database/purges", json={"table": customers, "backups": True}
    ) as answer:
        assert answer.status == 200
        whole = await answer.json()
    assert whole["imports"] == 2 and len(whole["backups_deleting"]) == 1
    for import_id in ids:
        assert all(count == 0 for count in (await _kept(db, import_id)).values())
    async with http.post(
        "/api/v1/database/purges", json={"table": customers, "key": {"name": "x"}}
    ) as wrong:
        assert wrong.status == 422  # a key must be the primary key
