"""Reading imports: the list is paginated; health and metrics are served."""

from __future__ import annotations

import aiohttp
import asyncpg

from tests.conftest import Running, wait_final


async def test_list_is_newest_first_and_paginated(
    http: aiohttp.ClientSession, db: asyncpg.Connection, customers: str
) -> None:
    ids = []
    for i in range(3):
        body = f"id,name,email,signup_date,active\n{i},N,e{i}@x,2024-01-01,yes\n".encode()
        async with http.post(
            "/api/v1/database/import",
            params={"table": customers},
            data=body,
            headers={"Content-Type": "text/csv"},
        ) as response:
            ids.append((await response.json())["id"])
    for import_id in ids:
        await wait_final(db, import_id)
    seen: list[str] = []
    url = "/api/v1/database/imports?limit=2"
    for _ in range(100):
        async with http.get(url) as response:
            page = await response.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        if not page["next_cursor"]:
            assert "Link" not in response.headers
            break
        assert response.headers["Link"].endswith('rel="next"')
        url = f"/api/v1/database/imports?limit=2&cursor={page['next_cursor']}"
    assert seen[:3] == ids[::-1]
    assert len(seen) == len(set(seen))
    async with http.get("/api/v1/database/imports?cursor=garbage") as response:
        assert response.status == 400


async def test_health_and_metrics(http: aiohttp.ClientSession, services: Running) -> None:
    async with http.get("/healthz") as response:
        assert response.status == 200
        assert (await response.json()) == {"status": "ok", "dead": []}
    async with http.get("/readyz") as response:
        body = await response.json()
        assert response.status == 200, body
        assert body["checks"]["database"] == {"ok": True}
        assert body["checks"]["broker"] == {"ok": True}
    async with http.get("/metrics") as response:
        text = await response.text()
    for name in (
        "tidegate_gateway_http_requests_total",
        "tidegate_events_consumed_total",
        "tidegate_loader_rows_total",
        "tidegate_imports_finished_total",
        "tidegate_outbox_pending_events",
        "tidegate_consumer_lag",
        "tidegate_redrives_total",
        "tidegate_oldest_unfinished_chunk_age_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
