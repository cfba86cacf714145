"""API keys: 401 for every kind of bad credential; create, list, rotate, revoke; only a
hash is stored; the audit log records who did what."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import MakeKey, Running, bearer


async def _status(
    session: aiohttp.ClientSession, headers: dict[str, str], path: str = "/api/v1/me"
) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with session.get(path, headers=headers) as response:
        return response.status, dict(response.headers), await response.json(content_type=None)


async def test_missing_malformed_wrong_prefix_unknown_and_revoked_keys_are_401(
    services: Running, make_key: MakeKey, admin_token: str
) -> None:
    token = await make_key("viewer", name="to be revoked")
    lookup, _, secret = token.removeprefix("tg_").partition("_")
    cases = {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": {"Authorization": "Bearer not-a-key"},
        "wrong prefix": {"Authorization": f"Bearer sk_{lookup}_{secret}"},
        "unknown lookup": bearer(f"tg_{'a' * 12}_{secret}"),
        "wrong secret": bearer(f"tg_{lookup}_{'x' * 43}"),
        "oversized": bearer("tg_" + "a" * 5000),
        "x-api-key wrong": {"X-API-Key": f"tg_{lookup}_{'y' * 43}"},
    }
    async with aiohttp.ClientSession(base_url=services.api) as session:
        assert (await _status(session, bearer(token)))[0] == 200
        assert (await _status(session, {"X-API-Key": token}))[0] == 200
        async with session.delete(
            f"/api/v1/keys/{(await _status(session, bearer(token)))[2]['id']}",
            headers=bearer(admin_token),
        ) as response:
            assert response.status == 200
            assert (await response.json())["active"] is False
        cases["revoked"] = bearer(token)
        for name, headers in cases.items():
            status, answer_headers, problem = await _status(session, headers)
            assert status == 401, name
            assert answer_headers["Content-Type"].startswith("application/problem+json"), name
            assert answer_headers["WWW-Authenticate"].startswith('Bearer realm="tidegate"'), name
            code = "missing-credentials" if name == "missing" else "invalid-credentials"
            assert problem["type"] == f"/problems/{code}", name
            assert "Traceback" not in str(problem) and "SELECT" not in str(problem)


async def test_create_list_rotate_revoke(
    http: aiohttp.ClientSession, services: Running, db: asyncpg.Connection
) -> None:
    async with http.post(
        "/api/v1/keys",
        json={"name": "etl", "role": "data_manager", "team": "finance", "tables": ["ledger"]},
    ) as response:
        assert response.status == 201
        created = await response.json()
    token = created["key"]
    assert token.startswith(f"{created['prefix']}_") and created["prefix"].startswith("tg_")
    assert len(token) > 50  # 12-character lookup and 256 random bits
    assert response.headers["Location"] == f"/api/v1/keys/{created['id']}"
    assert (created["role"], created["team"], created["tables"]) == (
        "data_manager",
        "finance",
        ["public.ledger"],
    )
    stored = await db.fetchrow("SELECT * FROM tidegate.api_keys WHERE id = $1::uuid", created["id"])
    secret = token.split("_", 2)[2]
    assert stored is not None
    assert bytes(stored["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in str(dict(stored))  # only the hash is kept
    async with http.get("/api/v1/keys") as response:
        listed = {k["id"]: k for k in (await response.json())["items"]}
    assert created["id"] in listed and "key" not in listed[created["id"]]
    assert secret not in str(listed)

    async with aiohttp.ClientSession(base_url=services.api) as session:
        async with http.post(f"/api/v1/keys/{created['id']}/rotate") as response:
            assert response.status == 200
            rotated = (await response.json())["key"]
        assert rotated != token and rotated.startswith(f"{created['prefix']}_")
        assert (await _status(session, bearer(token)))[0] == 401  # no grace: old one is dead
        assert (await _status(session, bearer(rotated)))[0] == 200
        async with http.get(f"/api/v1/keys/{created['id']}") as response:
            assert (await response.json())["last_used_at"] is not None
        async with http.post(
            f"/api/v1/keys/{created['id']}/rotate", params={"grace_seconds": "600"}
        ) as response:
            third = (await response.json())["key"]
            assert (await response.json())["previous_valid_until"] is not None
        assert (await _status(session, bearer(rotated)))[0] == 200  # within the grace period
        assert (await _status(session, bearer(third)))[0] == 200
        async with http.delete(f"/api/v1/keys/{created['id']}") as response:
            assert response.status == 200
        for old in (rotated, third):  # revocation ends the grace period too
            assert (await _status(session, bearer(old)))[0] == 401
    async with http.get("/api/v1/keys") as response:
        assert created["id"] not in {k["id"] for k in (await response.json())["items"]}
    async with http.get("/api/v1/keys", params={"include_revoked": "true"}) as response:
        assert created["id"] in {k["id"] for k in (await response.json())["items"]}


async def test_bad_key_requests(http: aiohttp.ClientSession, db: asyncpg.Connection) -> None:
    bodies = {
        b'{"name": "x", "role": "root"}': 422,
        b'{"name": "", "role": "viewer"}': 422,
        b'{"name": "x", "role": "viewer", "extra": 1}': 422,
        b'{"name": "x", "role": "viewer", "tables": ["a.b.c"]}': 422,
        b'{"name": "x", "role": "viewer", "concurrent_imports": 0}': 422,
        b"not json": 400,
    }
    before = await db.fetchval("SELECT count(*) FROM tidegate.api_keys")
    for body, status in bodies.items():
        async with http.post(
            "/api/v1/keys", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == status, body
            assert response.headers["Content-Type"].startswith("application/problem+json")
    assert await db.fetchval("SELECT count(*) FROM tidegate.api_keys") == before
    for path in ("/api/v1/keys/not-a-uuid", "/api/v1/keys/00000000-0000-0000-0000-000000000000"):
        async with http.get(path) as response:
            assert (response.status, (await response.json())["type"]) == (
                404,
                "/problems/key-not-found",
            )


async def test_the_last_admin_key_cannot_be_revoked(
    services: Running, db: asyncpg.Connection, make_key: MakeKey
) -> None:
    admins = await db.fetch(
        "SELECT id FROM tidegate.api_keys WHERE role = 'admin' AND revoked_at IS NULL"
    )
    solo = await make_key("admin", name="solo admin")
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(solo)) as session:
        me = (await _status(session, {}))[2]
        await db.execute(  # leave `solo` as the only active admin, for this test only
            "UPDATE tidegate.api_keys SET revoked_at = now() WHERE id = ANY($1::uuid[])",
            [r["id"] for r in admins],
        )
        try:
            async with session.delete(f"/api/v1/keys/{me['id']}") as response:
                assert response.status == 409
                assert (await response.json())["type"] == "/problems/last-admin-key"
        finally:
            await db.execute(
                "UPDATE tidegate.api_keys SET revoked_at = NULL WHERE id = ANY($1::uuid[])",
                [r["id"] for r in admins],
            )
        async with session.delete(f"/api/v1/keys/{me['id']}") as response:
            assert response.status == 200  # another admin exists again


async def test_the_audit_log_records_who_did_what(
    http: aiohttp.ClientSession, services: Running, make_key: MakeKey, customers: str
) -> None:
    viewer = await make_key("viewer", name="audited viewer")
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(viewer)) as session:
        me = (await _status(session, {}))[2]
        async with session.post(
            "/api/v1/database/import",
            params={"table": customers},
            data=b"id\n1\n",
            headers={"Content-Type": "text/csv"},
        ) as response:
            assert response.status == 403
        async with session.get("/api/v1/audit-log") as response:
            assert response.status == 403
    async with aiohttp.ClientSession(base_url=services.api) as session:
        await _status(session, bearer(f"tg_{me['prefix'][3:]}_{'z' * 43}"))  # wrong secret
    async with http.get("/api/v1/audit-log", params={"key_id": me["id"]}) as response:
        entries = (await response.json())["items"]
    assert [(e["action"], e["method"], e["status"], e["outcome"], e["role"]) for e in entries] == [
        ("audit.list", "GET", 403, "denied", "viewer"),
        ("imports.create", "POST", 403, "denied", "viewer"),
        ("me.read", "GET", 200, "success", "viewer"),
    ]
    assert entries[1]["target"] == customers
    assert all(e["request_id"] and e["at"] for e in entries)
    async with http.get(
        "/api/v1/audit-log", params={"outcome": "denied", "action": "me.read", "limit": "5"}
    ) as response:
        refused = (await response.json())["items"]
    assert any(e["key_lookup"] == me["prefix"][3:] and e["key_id"] is None for e in refused)
    async with http.get("/api/v1/audit-log", params={"limit": "1"}) as response:
        page = await response.json()
    async with http.get(
        "/api/v1/audit-log", params={"limit": "1", "cursor": page["next_cursor"]}
    ) as response:
        older = (await response.json())["items"]
    assert older[0]["id"] < page["items"][0]["id"]


async def test_a_team_shares_its_imports_and_nobody_else_sees_them(
    services: Running, make_key: MakeKey, customers: str
) -> None:
    limits = {"concurrent_imports": 10, "requests_per_minute": 1000}
    alice = await make_key("data_manager", name="alice", team="finance", **limits)
    bob = await make_key("viewer", name="bob", team="finance", **limits)
    eve = await make_key("data_manager", name="eve", team="sales", **limits)
    loner = await make_key("data_manager", name="loner", **limits)
    async with aiohttp.ClientSession(base_url=services.api) as session:
        async with session.post(
            "/api/v1/database/import",
            params={"table": customers, "validate_only": "true"},
            data=b"id,name,email,signup_date,active\n1,A,a@x,2024-01-01,yes\n",
            headers={"Content-Type": "text/csv", **bearer(alice)},
        ) as response:
            import_id = (await response.json())["id"]
        seen = {}
        for name, token in (("alice", alice), ("bob", bob), ("eve", eve), ("loner", loner)):
            async with session.get(
                f"/api/v1/database/imports/{import_id}", headers=bearer(token)
            ) as response:
                seen[name] = response.status
            async with session.get("/api/v1/database/imports", headers=bearer(token)) as response:
                listed = {i["id"] for i in (await response.json())["items"]}
                assert (import_id in listed) == (seen[name] == 200), name
    assert seen == {"alice": 200, "bob": 200, "eve": 404, "loner": 404}
