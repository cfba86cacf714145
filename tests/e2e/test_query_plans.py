"""Every query the API runs is served by an index (issue 19, item 13). The statements the
gateway sends while a client walks the API are recorded (with their values); then, in a
transaction rolled back afterwards, tidegate's tables are filled to a realistic size and
analysed, and each statement's plan must read none of the large tables whole."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import msgspec

from shared.db import BoundedPool
from shared.service import POOL
from tests.conftest import MakeKey, Running, bearer, wait_final
from tests.e2e.test_import_pipeline import post_csv
from tidegate.sample_data import HEADER

# Table → rows at a realistic size (a year of steady use).
SIZES = {
    "imports": 200_000,
    "row_errors": 400_000,
    "import_journal": 400_000,
    "outbox": 100_000,
    "chunks": 100_000,
    "audit_log": 300_000,
    "chunk_ledger": 200_000,
    "chunk_progress": 300_000,
    "load_lineage": 200_000,
    "backups": 20_000,
    "verifications": 20_000,
    "operations": 50_000,
}

FILL = [
    "INSERT INTO tidegate.api_keys (id, lookup, secret_hash, name, role, team)"
    " SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,"
    " 'fill' || i, '\\x00', 'fill', 'data_manager', 't' || (i % 50)"
    " FROM generate_series(0, 499) AS i",
    # imports, spread over a year, keys and teams
    "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source, status,"
    " key_id, team, created_at, updated_at, finished_at)"
    " SELECT gen_random_uuid(), 'public.fill_t' || (i % 200), '{{id}}', 1000, 'http', 'completed',"
    " ('00000000-0000-4000-8000-' || lpad(to_hex(i % 500), 12, '0'))::uuid, 't' || (i % 50),"
    " now() - make_interval(mins => i), now() - make_interval(mins => i),"
    " now() - make_interval(mins => i) FROM generate_series(1, {imports}) AS i",
    "CREATE TEMP TABLE fill_ids ON COMMIT DROP AS SELECT id, row_number() OVER () AS n"
    " FROM tidegate.imports WHERE target_table LIKE 'public.fill\\_t%'",
    "INSERT INTO tidegate.row_errors (import_id, seq, stage, line, column_name, code,"
    " message, value, severity) SELECT f.id, 0, 'validated', i, 'c' || (i % 9),"
    " 'invalid_date', 'not a date', (i % 10000)::text, 'error'"
    " FROM generate_series(1, {row_errors}) AS i JOIN fill_ids f ON f.n = 1 + i % 50000",
    "INSERT INTO tidegate.import_journal (import_id, at, service, kind, seq)"
    " SELECT f.id, now() - make_interval(secs => i), 'auditor',"
    " CASE WHEN i % 1000 = 0 THEN 'dead_lettered' ELSE 'status' END, 0"
    " FROM generate_series(1, {import_journal}) AS i JOIN fill_ids f ON f.n = 1 + i % 50000",
    "INSERT INTO tidegate.outbox (event_id, event_type, topic, key, payload, import_id,"
    " published_at) SELECT 'fill:' || i, 't', 'tidegate.chunk.submitted', f.id::text,"
    " '\\x00', f.id, now() FROM generate_series(1, {outbox}) AS i"
    " JOIN fill_ids f ON f.n = 1 + i % 50000",
    "INSERT INTO tidegate.chunks (import_id, seq, row_count, last, payload)"
    " SELECT f.id, i / 50000, 1000, false, '\\x00' FROM generate_series(1, {chunks}) AS i"
    " JOIN fill_ids f ON f.n = 1 + i % 50000",
    "INSERT INTO tidegate.audit_log (at, key_id, action, method, path, status, outcome,"
    " request_id) SELECT now() - make_interval(secs => i),"
    " ('00000000-0000-4000-8000-' || lpad(to_hex(i % 500), 12, '0'))::uuid,"
    " 'imports.read', 'GET', '/x', 200, 'success', 'r' || i"
    " FROM generate_series(1, {audit_log}) AS i",
    "INSERT INTO tidegate.chunk_ledger (import_id, seq, loaded_rows, failed_rows)"
    " SELECT f.id, i / 50000, 1000, 0 FROM generate_series(1, {chunk_ledger}) AS i"
    " JOIN fill_ids f ON f.n = 1 + i % 50000",
    "INSERT INTO tidegate.chunk_progress (import_id, seq, stage, rows_in, rows_ok,"
    " rows_failed) SELECT f.id, i / 50000, 'validated', 1000, 1000, 0"
    " FROM generate_series(1, {chunk_progress}) AS i JOIN fill_ids f ON f.n = 1 + i % 50000",
    "INSERT INTO tidegate.load_lineage (import_id, seq, part, target_table, row_count, keys)"
    " SELECT f.id, i / 50000, 0, 'public.fill_t' || (i % 200), 1, jsonb_build_array("
    " jsonb_build_array(i)) FROM generate_series(1, {load_lineage}) AS i"
    " JOIN fill_ids f ON f.n = 1 + i % 50000",
    "INSERT INTO tidegate.backups (id, tables, status, key_id, team, created_at)"
    " SELECT gen_random_uuid(), ARRAY['public.fill_t' || (i % 200)], 'completed',"
    " ('00000000-0000-4000-8000-' || lpad(to_hex(i % 500), 12, '0'))::uuid, 't' || (i % 50),"
    " now() - make_interval(mins => i) FROM generate_series(1, {backups}) AS i",
    "INSERT INTO tidegate.verifications (id, tables, status, key_id, team, created_at)"
    " SELECT gen_random_uuid(), ARRAY['public.fill_t' || (i % 200)], 'completed',"
    " ('00000000-0000-4000-8000-' || lpad(to_hex(i % 500), 12, '0'))::uuid, 't' || (i % 50),"
    " now() - make_interval(mins => i) FROM generate_series(1, {verifications}) AS i",
    "INSERT INTO tidegate.operations (id, kind, trigger, import_id, status, finished_at)"
    " SELECT gen_random_uuid(), 'rollback', 'request', f.id, 'completed', now()"
    " FROM generate_series(1, {operations}) AS i JOIN fill_ids f ON f.n = 1 + i % 50000",
]


def _scans(plan: dict[str, Any]) -> Iterator[str]:
    """The relations a plan reads whole."""
    if plan.get("Node Type") == "Seq Scan":
        yield str(plan.get("Relation Name"))
    for child in plan.get("Plans", ()):
        yield from _scans(child)


async def _walk(services: Running, http: aiohttp.ClientSession, db: asyncpg.Connection,
                customers: str, viewer: str) -> None:  # fmt: skip
    """What clients do: import, read it every way, list, page, stream, administer."""
    body = ",".join(HEADER) + "\n1,A,a@x,Oslo,2024-01-01,1,yes,,\n2,B,b@x,Oslo,2024-13-01,1,yes,,\n"
    status, accepted, _ = await post_csv(http, customers, body)
    assert status == 202
    import_id = accepted["id"]
    await wait_final(db, import_id)
    base = f"/api/v1/database/imports/{import_id}"
    gets = [
        base,
        f"{base}/report",
        f"{base}/errors",
        f"{base}/errors?format=csv",
        f"{base}/failed",
        f"{base}/events",
        "/api/v1/database/imports?limit=20",
        "/api/v1/status",
        "/api/v1/audit-log?limit=50",
        f"/api/v1/audit-log?limit=50&key_id={uuid.uuid4()}",
        "/api/v1/database/backups",
        "/api/v1/database/verifications",
        f"/api/v1/database/verifications?table={customers}",
        f"/api/v1/database/records?table={customers}&id=1",
    ]
    for path in gets:
        async with http.get(path) as answer:
            assert answer.status == 200, (path, answer.status)
            await answer.read()
    async with http.post(f"{base}/rollback", params={"dry_run": "true"}) as preview:
        assert preview.status == 200
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(viewer)) as other:
        async with other.get("/api/v1/database/imports?limit=20") as listed:
            assert listed.status == 200
        async with other.get("/api/v1/database/imports/stream",
                             params={"since": "2024-01-01T00:00:00Z"}) as stream:  # fmt: skip
            assert stream.status == 200
            await stream.content.readline()


async def test_the_apis_queries_read_no_large_table_whole(
    services: Running,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    customers: str,
    make_key: MakeKey,
) -> None:
    pool = services.apps["gateway"][POOL]
    assert isinstance(pool, BoundedPool)
    seen: dict[str, tuple[Any, ...]] = {}

    def record(query: Any) -> None:
        text = query.query.lstrip()
        if text[:6].upper() in ("SELECT", "WITH S") and "tidegate." in text:
            seen.setdefault(text, tuple(query.args))

    viewer = await make_key("viewer", team="t7", name="plans viewer")
    pool.observers.append(record)
    try:
        await _walk(services, http, db, customers, viewer)
    finally:
        pool.observers.remove(record)
    assert len(seen) >= 15

    whole: list[str] = []
    transaction = db.transaction()
    await transaction.start()
    try:
        for statement in FILL:
            await db.execute(statement.format(**SIZES))
        for table in SIZES:
            await db.execute(f"ANALYZE tidegate.{table}")
        await db.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        for text, args in seen.items():
            plan = msgspec.json.decode(await db.fetchval(f"EXPLAIN (FORMAT JSON) {text}", *args))[
                0
            ]["Plan"]
            large = [t for t in _scans(plan) if t in SIZES]
            if large:
                whole.append(f"{', '.join(large)} read whole by: {text[:300]}")
    finally:
        await transaction.rollback()
    assert whole == [], "\n".join(whole)
