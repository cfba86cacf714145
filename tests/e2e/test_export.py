"""`GET /api/v1/database/export`: the table as CSV, formula cells escaped, scoped keys."""

from __future__ import annotations

import csv
import io

import aiohttp
import asyncpg

from tests.conftest import MakeKey, Running, bearer


async def test_export_streams_the_table_with_formulas_escaped(
    services: Running, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        f"INSERT INTO {customers} (id, name, email, city, signup_date, active, balance) VALUES"
        " (2, '=HYPERLINK(\"http://evil\")', 'b@x', '-x', '2024-01-02', true, -12.5),"
        " (1, 'Ann, \"the\" first', 'a@x', NULL, '2024-01-01', false, NULL),"
        " (3, '@SUM(A1)', '+1', '+1', '2024-01-03', true, 0)"
    )
    subscriber = await make_key("subscriber", name="exporter", tables=[customers])
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(subscriber)) as session:
        async with session.get("/api/v1/database/export", params={"table": customers}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
            assert "attachment" in response.headers["Content-Disposition"]
            assert response.headers["RateLimit"].startswith('"per-key";r=')
            text = await response.text()
        async with session.get(
            "/api/v1/database/export",
            params={"table": customers, "columns": "name,id,city,signup_date,active,balance"},
        ) as response:
            some = list(csv.reader(io.StringIO(await response.text())))
        async with session.get(
            "/api/v1/database/export", params={"table": "public.demo_customers"}
        ) as response:
            assert response.status in (403, 404)  # outside the key's tables (or absent)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "id", "name", "email", "city", "signup_date", "balance", "active", "last_seen", "notes"
    ]  # fmt: skip
    evil = '\'=HYPERLINK("http://evil")'
    assert [r[:7] for r in rows[1:]] == [
        ["1", 'Ann, "the" first', "a@x", "", "2024-01-01", "", "false"],
        ["2", evil, "b@x", "'-x", "2024-01-02", "-12.50", "true"],
        ["3", "'@SUM(A1)", "+1", "+1", "2024-01-03", "0.00", "true"],
    ]  # plain numbers (-12.50, +1) are left alone; NULL is an empty cell
    assert some == [
        ["name", "id", "city", "signup_date", "active", "balance"],
        ['Ann, "the" first', "1", "", "2024-01-01", "false", ""],
        [evil, "2", "'-x", "2024-01-02", "true", "-12.50"],
        ["'@SUM(A1)", "3", "+1", "2024-01-03", "true", "0.00"],
    ]


async def test_a_table_scoped_key_may_use_only_its_tables(
    services: Running, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    other = customers + "_other"
    await db.execute(f"CREATE TABLE {other} (LIKE {customers} INCLUDING ALL)")
    token = await make_key("data_manager", name="scoped", tables=[customers])
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as session:
        for method, path in (
            ("POST", "/api/v1/database/import"),
            ("GET", "/api/v1/database/export"),
        ):
            async with session.request(
                method,
                path,
                params={"table": other},
                data=b"id,name,email,signup_date,active\n1,a,b,2024-01-01,yes\n",
                headers={"Content-Type": "text/csv"},
            ) as response:
                assert response.status == 403
                problem = await response.json()
                assert problem["type"] == "/problems/forbidden"
                assert problem["allowed_tables"] == [customers]
        async with session.get("/api/v1/me") as response:
            assert (await response.json())["tables"] == [customers]
    assert await db.fetchval(f"SELECT count(*) FROM {other}") == 0
