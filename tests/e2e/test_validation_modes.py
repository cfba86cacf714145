"""Modes and policies beyond the corpus: what update, dry-run and validate-only leave in
tidegate's own tables, the CSV error download, rule-file and policy problems."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.conftest import wait_final
from tests.e2e.test_import_pipeline import post_csv
from tests.e2e.test_problems import post

PEOPLE = """
CREATE TABLE {t} (id integer PRIMARY KEY, email text UNIQUE, name text NOT NULL,
                  bio text CHECK (bio IS DISTINCT FROM 'forbidden'));
INSERT INTO {t} VALUES (1, 'one@example.com', 'One', 'old bio');
"""


@pytest.fixture
async def people(db: asyncpg.Connection) -> str:
    table = f"public.people_{uuid.uuid4().hex[:8]}"
    await db.execute(PEOPLE.format(t=table))
    return table


async def test_update_keeps_the_previous_row_and_the_inserted_keys(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    body = "id,email,name,bio\n1,one@example.com,One v2,new bio\n2,two@example.com,Two,\n"
    status, answer, _ = await post_csv(http, people, body, on_duplicate="update")
    assert status == 202, answer
    final = await wait_final(db, answer["id"])
    assert (final["status"], final["loaded_rows"], final["updated_rows"]) == ("completed", 2, 1)
    import_id = uuid.UUID(answer["id"])
    images = await db.fetch(
        "SELECT before FROM tidegate.row_images WHERE import_id = $1", import_id
    )
    assert [r["before"] for r in images] == [
        '[{"id": 1, "bio": "old bio", "name": "One", "email": "one@example.com"}]'
    ]
    lineage = await db.fetch(
        "SELECT keys FROM tidegate.load_lineage WHERE import_id = $1 AND row_count > 0", import_id
    )
    assert [r["keys"] for r in lineage] == ["[[2]]"]
    stored = await db.fetch(f"SELECT id, name, bio FROM {people} ORDER BY id")
    assert [tuple(r) for r in stored] == [
        (1, "One v2", "new bio"),
        (2, "Two", None),
    ]


async def test_dry_run_and_validate_only_leave_no_trace_in_the_table(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    body = "id,email,name,bio\n2,two@example.com,Two,forbidden\n3,three@example.com,Three,\n"
    ids = {}
    for mode in ("dry_run", "validate_only"):
        status, answer, _ = await post_csv(http, people, body, **{mode: "true"})
        assert (status, answer["mode"]) == (202, mode)
        ids[mode] = uuid.UUID(answer["id"])
        final = await wait_final(db, answer["id"])
        expected = "completed_with_errors" if mode == "dry_run" else "completed"
        assert final["status"] == expected
    assert await db.fetchval(f"SELECT count(*) FROM {people}") == 1
    ledger = "SELECT count(*) FROM tidegate.chunk_ledger WHERE import_id = $1"
    lineage = "SELECT count(*) FROM tidegate.load_lineage WHERE import_id = $1"
    assert await db.fetchval(ledger, ids["dry_run"]) == 1  # the outcome is recorded
    assert await db.fetchval(lineage, ids["dry_run"]) == 0  # rolled back with the rows
    assert await db.fetchval(ledger, ids["validate_only"]) == 0  # never loaded
    keys = "SELECT count(*) FROM tidegate.import_key_chunks WHERE import_id = ANY($1::uuid[])"
    assert await db.fetchval(keys, list(ids.values())) == 0  # claims dropped when finished


async def test_error_report_downloads_as_csv_with_formulas_escaped(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    body = "id,email,name,bio\n2,two@example.com,=1+1,\n3,x,Three,\n"
    status, answer, _ = await post_csv(http, people, body)
    assert status == 202, answer
    await wait_final(db, answer["id"])
    url = f"/api/v1/database/imports/{answer['id']}/errors"
    for params, headers in (({"format": "csv"}, {}), ({}, {"Accept": "text/csv"})):
        async with http.get(url, params=params, headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in response.headers["Content-Disposition"]
            text = await response.text()
        table = list(csv.reader(io.StringIO(text)))
        assert table[0] == ["line", "column", "severity", "code", "message", "value", "stage"]
        assert [(r[0], r[1], r[3], r[5]) for r in table[1:]] == [("2", "name", "formula", "'=1+1")]
    async with http.get(f"/api/v1/database/imports/{answer['id']}/report") as response:
        report = await response.json()
    assert (report["total_records"], report["failed_records"]) == (2, 1)
    assert report["errors_by_code"] == {"formula": 1}


@pytest.mark.usefixtures("nothing_stored")
async def test_rule_file_and_policy_problems(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str, rules_dir: Path
) -> None:
    keyless = f"public.keyless_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {keyless} (a text)")
    status, problem = await post(http, {"table": keyless, "on_duplicate": "update"}, b"a\nx\n")
    assert (status, problem["parameter"]) == (400, "on_duplicate")
    assert "primary key or unique constraint" in problem["detail"]
    rule_file = rules_dir / f"{people}.toml"
    rule_file.write_text('format = "tidegate.rules/v1"\n[columns.nickname]\nrequired = true\n')
    try:
        status, problem = await post(http, {"table": people}, b"id,name\n5,x\n")
        assert (status, problem["type"]) == (409, "/problems/invalid-rule-file")
        assert "[columns.nickname]: the table has no such column" in problem["detail"]
        rule_file.write_text('format = "tidegate.rules/v1"\n[columns.name]\nrequird = true\n')
        status, problem = await post(http, {"table": people}, b"id,name\n5,x\n")
        assert (status, problem["type"]) == (409, "/problems/invalid-rule-file")
        assert "requird" in problem["detail"]
        rule_file.write_text('format = "tidegate.rules/v1"\n[columns.email]\nrequired = true\n')
        status, problem = await post(http, {"table": people}, b"id,name\n5,x\n")
        assert (status, problem["type"], problem["missing"]) == (
            422,
            "/problems/header-mismatch",
            ["email"],
        )
    finally:
        rule_file.unlink()


async def test_declared_charset_of_a_multipart_file_is_used(
    http: aiohttp.ClientSession, db: asyncpg.Connection, people: str
) -> None:
    form = aiohttp.FormData()
    form.add_field(
        "file",
        "id,name\n7,Ærø\n".encode("iso8859-15"),
        filename="legacy.csv",
        content_type="text/csv; charset=ISO-8859-15",
    )
    async with http.post("/api/v1/database/import", params={"table": people}, data=form) as r:
        answer = await r.json()
    assert (r.status, answer["encoding"]) == (202, "iso-8859-15")
    await wait_final(db, answer["id"])
    assert await db.fetchval(f"SELECT name FROM {people} WHERE id = 7") == "Ærø"
