"""Bad requests get RFC 9457 problem+json, and nothing is stored."""

from __future__ import annotations

import io
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.e2e.test_import_pipeline import as_csv
from tidegate.sample_data import rows

PATH = "/api/v1/database/import"


async def post(
    http: aiohttp.ClientSession, params: dict[str, str], body: bytes, content_type: str = "text/csv"
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        PATH, params=params, data=io.BytesIO(body), headers={"Content-Type": content_type}
    ) as response:
        assert response.headers["Content-Type"].startswith("application/problem+json")
        problem = await response.json(content_type=None)
        assert problem["status"] == response.status
        assert problem["type"].startswith("/problems/")
        return response.status, problem


@pytest.mark.usefixtures("nothing_stored")
async def test_unknown_and_forbidden_tables_are_404(http: aiohttp.ClientSession) -> None:
    for table in ("no_such_table", "tidegate.imports", "pg_catalog.pg_class", 'x"; DROP --'):
        status, problem = await post(http, {"table": table}, b"a\n1\n")
        assert (status, problem["type"]) == (404, "/problems/unknown-table"), table


@pytest.mark.usefixtures("nothing_stored")
async def test_header_mismatch_names_the_columns(
    http: aiohttp.ClientSession, customers: str
) -> None:
    body = b"id,nme,email,colour,signup_date,active\n1,a,b,c,2024-01-01,yes\n"
    status, problem = await post(http, {"table": customers}, body)
    assert (status, problem["type"]) == (422, "/problems/header-mismatch")
    assert problem["missing"] == ["name"]
    assert problem["unexpected"] == ["nme", "colour"]


@pytest.mark.usefixtures("nothing_stored")
async def test_undecodable_body_names_the_byte(http: aiohttp.ClientSession, customers: str) -> None:
    body = (
        "id,name,email,signup_date,active\n1,Zoë,z@x,2024-01-01,yes\n2,caf"
    ).encode() + b"\xe9\n"
    status, problem = await post(http, {"table": customers}, body)
    assert (status, problem["type"]) == (422, "/problems/invalid-encoding")
    assert (problem["line"], problem["column"], problem["byte_offset"]) == (3, 6, 64)


@pytest.mark.usefixtures("nothing_stored")
async def test_not_csv(http: aiohttp.ClientSession, customers: str) -> None:
    status, problem = await post(http, {"table": customers}, b"")
    assert (status, problem["type"]) == (422, "/problems/empty-file")
    status, problem = await post(
        http, {"table": customers}, b'id,name,email,signup_date,active\n1,"open,x,y,z\n'
    )
    assert (status, problem["type"], problem["line"]) == (422, "/problems/malformed-csv", 2)
    status, problem = await post(http, {"table": customers}, b"{}", "application/json")
    assert (status, problem["type"]) == (415, "/problems/unsupported-media-type")
    status, problem = await post(http, {"table": customers}, b"a", "text/csv; charset=x-klingon")
    assert (status, problem["type"]) == (415, "/problems/unsupported-charset")


@pytest.mark.usefixtures("nothing_stored")
async def test_bad_parameters(http: aiohttp.ClientSession, customers: str) -> None:
    for params in (
        {"table": customers, "chunk_size": "0"},
        {"table": customers, "chunk_size": "10001"},
        {"table": customers, "chunk_size": "ten"},
    ):
        status, problem = await post(http, params, b"id\n")
        assert (status, problem["parameter"]) == (400, "chunk_size")
    status, problem = await post(http, {}, b"id\n")
    assert (status, problem["parameter"]) == (400, "table")
    for name, value in (
        ("validate_only", "maybe"),
        ("dry_run", "2"),
        ("on_duplicate", "merge"),
        ("delimiter", ":"),
        ("encoding", "ebcdic"),
    ):
        status, problem = await post(http, {"table": customers, name: value}, b"id\n")
        assert (status, problem["type"], problem["parameter"]) == (
            400,
            "/problems/invalid-parameter",
            name,
        )
    both = {"table": customers, "validate_only": "true", "dry_run": "true"}
    status, problem = await post(http, both, b"id\n")
    assert (status, problem["parameter"]) == (400, "dry_run")


async def test_unknown_imports_are_404(http: aiohttp.ClientSession) -> None:
    for path in (
        f"/api/v1/database/imports/{uuid.uuid4()}",
        "/api/v1/database/imports/nope",
        f"/api/v1/database/imports/{uuid.uuid4()}/errors",
        "/api/v1/nothing-here",
    ):
        async with http.get(path) as response:
            assert response.status == 404
            assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_ragged_rows_are_row_errors_not_request_errors(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    from tests.conftest import wait_final  # noqa: PLC0415

    body = (
        b"id,name,email,signup_date,active\n1,A,a@x,2024-01-01,yes\n2,B,b@x\n"
        b"3,C,c@x,2024-01-03,no,extra\n4,D,d@x,2024-01-04,0\n"
    )
    async with http.post(
        PATH, params={"table": customers}, data=body, headers={"Content-Type": "text/csv"}
    ) as response:
        accepted = await response.json()
        assert response.status == 202
    final = await wait_final(db, accepted["id"])
    assert (final["status"], final["loaded_rows"], final["failed_rows"]) == (
        "completed_with_errors",
        2,
        2,
    )
    errors = await db.fetch(
        "SELECT line, code FROM tidegate.row_errors WHERE import_id = $1 ORDER BY line",
        uuid.UUID(accepted["id"]),
    )
    assert [tuple(e) for e in errors] == [(3, "wrong_field_count"), (4, "wrong_field_count")]


@pytest.mark.usefixtures("nothing_stored")
async def test_more_records_than_an_import_may_hold(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    body = as_csv(list(rows(10_001))).encode()
    status, problem = await post(http, {"table": customers, "chunk_size": "1000"}, body)
    assert (status, problem["type"], problem["max_records"]) == (
        422,
        "/problems/too-many-records",
        10_000,
    )
    assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 0


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/api/v1/audit-log", "0001-01-01T00:00:12.2+20:02"),  # before year 1 once in UTC
        ("/api/v1/database/imports/stream", "9999-12-31T23:59:59-20:00"),  # after 9999
        ("/api/v1/database/imports/stream", "9" * 30),  # a cursor no gateway gave
    ],
)
async def test_times_out_of_range_are_400(
    http: aiohttp.ClientSession, path: str, value: str
) -> None:
    """Times that are valid ISO 8601 but out of range in UTC answered 500 (found by
    Schemathesis)."""
    name = "until" if "audit" in path else "since"
    async with http.get(path, params={name: value}) as answer:
        problem = await answer.json(content_type=None)
    assert (answer.status, problem["parameter"]) == (400, name)


async def test_a_nul_in_a_query_parameter_is_400(http: aiohttp.ClientSession) -> None:
    """It answered 500 (PostgreSQL text cannot hold NUL; found by Schemathesis)."""
    async with http.get("/api/v1/audit-log", params={"action": "a\x00b"}) as answer:
        problem = await answer.json(content_type=None)
    assert (answer.status, problem["parameter"]) == (400, "action")
