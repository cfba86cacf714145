"""`tidegate import --backup`, `export-failed`, `retry`, `rollback --last`, `backup …` and
`cancel` against the running gateway, each checked against the table."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import MakeKey, Running
from tests.e2e.test_cli_admin import _cli


def first_json(out: str) -> dict[str, Any]:
    document, _ = json.JSONDecoder().raw_decode(out, out.index("{"))
    assert isinstance(document, dict)
    return document


async def test_recovery_from_the_command_line(
    services: Running, make_key: MakeKey, db: asyncpg.Connection, tmp_path: Path
) -> None:
    key = await make_key("admin", concurrent_imports=10, requests_per_minute=10_000)
    table = f"public.cli_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text NOT NULL)")
    await db.execute(f"INSERT INTO {table} VALUES (1, 'one')")
    api = ("--api", services.api)
    source = tmp_path / "people.csv"
    source.write_text("id,name\n2,two\n3,\n4,four\n")

    code, out, err = await _cli("import", str(source), "--table", table, "--backup", *api, key=key)
    assert code == 1, err  # completed, with errors
    imported = first_json(out)
    assert imported["status"] == "completed_with_errors"
    backup_id = imported["options"]["backup_id"]

    failed = tmp_path / "failed.csv"
    code, out, err = await _cli("export-failed", imported["id"], "-o", str(failed), *api, key=key)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(failed.read_text())))
    assert rows[1][:3] == ["3", "", "3"]
    rows[1][1] = "three"
    with failed.open("w", newline="") as out_file:
        csv.writer(out_file).writerows(rows)
    code, out, err = await _cli("retry", imported["id"], "--file", str(failed), *api, key=key)
    assert code == 0, err + out
    ids = [r["id"] for r in await db.fetch(f"SELECT id FROM {table} ORDER BY id")]
    assert ids == [1, 2, 3, 4]

    code, out, err = await _cli("rollback", "--last", *api, key=key)  # the retry
    assert code == 0, err
    assert first_json(out)["result"]["delete"] == 1
    assert [r["id"] for r in await db.fetch(f"SELECT id FROM {table} ORDER BY id")] == [1, 2, 4]

    code, out, err = await _cli("backup", "list", *api, key=key)
    assert code == 0 and backup_id in out, err
    code, out, err = await _cli("backup", "restore", backup_id, *api, key=key)
    assert code == 0, err
    assert [r["id"] for r in await db.fetch(f"SELECT id FROM {table} ORDER BY id")] == [1]
    code, out, err = await _cli("backup", "create", "--table", table, *api, key=key)
    assert code == 0, err
    assert first_json(out)["status"] == "completed"
    code, out, err = await _cli("cancel", imported["id"], *api, key=key)
    assert code == 2 and "import-finished" in err
