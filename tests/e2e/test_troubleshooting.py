"""Troubleshooting tools against the running stack: a row's history (`debug record`)."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg

from tests.conftest import MakeKey, Running, wait_final
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
    async with http.get(
        "/api/v1/database/records", params={"table": table, "id": "nope"}
    ) as response:
        assert response.status == 400
    async with http.get("/api/v1/database/records", params={"table": table, "id": "9"}) as r:
        assert (await r.json())["current"] is None
