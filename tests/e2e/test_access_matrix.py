"""Walk tests/e2e/access_matrix.toml: every role against every endpoint, expected status."""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from services.gateway.access.guard import ROUTE_PERMISSIONS
from tests.conftest import MakeKey, Running, bearer, unfinished_import
from tidegate.sample_data import TABLE_SQL

MATRIX = tomllib.loads((Path(__file__).parent / "access_matrix.toml").read_text())
CSV = b"id,name,email,signup_date,active\n1,Ann,ann@example.com,2024-01-02,yes\n"
NO_LIMITS = {"requests_per_minute": 1_000_000, "concurrent_imports": 100}


async def _post_csv(session: aiohttp.ClientSession, table: str, token: str, **params: str) -> str:
    async with session.post(
        "/api/v1/database/import",
        params={"table": table, **params},
        data=CSV,
        headers={"Content-Type": "text/csv", **bearer(token)},
    ) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["id"])


async def _new_key_id(session: aiohttp.ClientSession, admin: str) -> str:
    async with session.post(
        "/api/v1/keys", json={"name": "matrix target", "role": "viewer"}, headers=bearer(admin)
    ) as response:
        assert response.status == 201
        return str((await response.json())["id"])


async def test_every_role_gets_the_expected_status_from_every_endpoint(
    services: Running, customers: str, make_key: MakeKey, db: asyncpg.Connection
) -> None:
    roles = [r for r in MATRIX["roles"] if r != "anonymous"]
    tokens = {role: await make_key(role, name=f"matrix {role}", **NO_LIMITS) for role in roles}
    admin = tokens["admin"]
    outsider = await make_key("data_manager", name="matrix outsider", **NO_LIMITS)
    mismatches: list[str] = []
    async with aiohttp.ClientSession(base_url=services.api) as session:
        other_import = await _post_csv(session, customers, outsider, validate_only="true")
        own = {
            "admin": await _post_csv(session, customers, admin, validate_only="true"),
            "data_manager": await _post_csv(
                session, customers, tokens["data_manager"], validate_only="true"
            ),
            "viewer": await _post_csv(session, customers, tokens["viewer"], validate_only="true"),
            "subscriber": other_import,
            "anonymous": other_import,
        }
        some_key = await _new_key_id(session, admin)
        # Table scope: two keys of one team, the second limited to `customers`.
        tokens["teammate"] = await make_key("data_manager", team="matrix", **NO_LIMITS)
        tokens["scoped_teammate"] = await make_key(
            "data_manager", team="matrix", tables=[customers], **NO_LIMITS
        )
        elsewhere = f"public.matrix_{uuid.uuid4().hex[:8]}"
        await db.execute(TABLE_SQL.format(table=elsewhere))
        team_owner = await make_key("data_manager", team="matrix", **NO_LIMITS)
        team_import = await _post_csv(session, elsewhere, team_owner, validate_only="true")
        for endpoint in MATRIX["endpoint"]:
            for role, expected in endpoint["expect"].items():
                path = endpoint["path"].format(
                    table=customers,
                    own_import=own.get(role, other_import),
                    other_import=other_import,
                    key=some_key,
                    fresh_key=await _new_key_id(session, admin),
                    unfinished_import=await unfinished_import(db, customers),
                    missing=uuid.UUID(int=0),
                    team_import=team_import,
                    team_unfinished_import=await unfinished_import(db, elsewhere, team="matrix"),
                )
                kwargs: dict[str, Any] = {"headers": bearer(tokens[role]) if role in tokens else {}}
                if endpoint.get("body") == "csv":
                    kwargs["data"] = CSV.replace(
                        b"1,Ann", f"{uuid.uuid4().int % 10**9},Ann".encode()
                    )
                    kwargs["headers"]["Content-Type"] = "text/csv"
                elif endpoint.get("body") == "key":
                    kwargs["json"] = {"name": "made by matrix", "role": "viewer"}
                elif endpoint.get("body") == "verify":
                    kwargs["json"] = {"tables": [customers]}
                elif endpoint.get("body") == "purge":
                    kwargs["json"] = {"table": "public.matrix_never_imported"}
                async with session.request(endpoint["method"], path, **kwargs) as response:
                    if response.status != 200 or not endpoint.get("stream"):
                        await response.read()  # a stream answers until the client leaves
                    if response.status != expected:
                        mismatches.append(
                            f"{endpoint['name']} as {role}: {response.status}, expected {expected}"
                        )
                    elif expected in (401, 403) and endpoint["method"] != "HEAD":  # no body
                        problem = await response.json(content_type="application/problem+json")
                        want = (
                            "/problems/forbidden"
                            if expected == 403
                            else "/problems/missing-credentials"
                        )
                        if problem["type"] != want:
                            mismatches.append(f"{endpoint['name']} as {role}: {problem['type']}")
    assert mismatches == []
    denied = await db.fetchval(
        "SELECT count(*) FROM tidegate.audit_log a JOIN tidegate.api_keys k ON k.id = a.key_id"
        " WHERE k.name LIKE 'matrix %' AND a.outcome = 'denied' AND a.status = 403"
    )
    expected_403 = sum(
        1 for e in MATRIX["endpoint"] for status in e["expect"].values() if status == 403
    )
    assert denied == expected_403  # every refusal is in the audit log


def test_the_matrix_covers_every_protected_route() -> None:
    from services.gateway.app import create_app  # noqa: PLC0415
    from shared.config import load_settings  # noqa: PLC0415

    app = create_app(
        load_settings("gateway", {"DATABASE_URL": "x", "KAFKA_BOOTSTRAP_SERVERS": "x"})
    )
    covered = set()
    for endpoint in MATRIX["endpoint"]:
        path = endpoint["path"].split("?")[0]
        for route in app.router.routes():
            info = route.resource.get_info() if route.resource else {}
            pattern = info.get("path") or info.get("formatter", "")
            probe = path.replace("{own_import}", "{import_id}").replace(
                "{other_import}", "{import_id}"
            )
            probe = probe.replace("{unfinished_import}", "{import_id}")
            probe = probe.replace("{team_unfinished_import}", "{import_id}")
            probe = probe.replace("{team_import}", "{import_id}")
            probe = probe.replace("{fresh_key}", "{key_id}").replace("{key}", "{key_id}")
            probe = probe.replace("operations/{missing}", "operations/{operation_id}")
            probe = probe.replace("backups/{missing}", "backups/{backup_id}")
            probe = probe.replace("verifications/{missing}", "verifications/{verification_id}")
            probe = probe.replace("uploads/{missing}", "uploads/{upload_id}")
            if route.method == endpoint["method"] and pattern == probe and route.name:
                covered.add(route.name)
    assert covered == set(ROUTE_PERMISSIONS)
    named = {route.name for route in app.router.routes() if route.name}
    assert named == set(ROUTE_PERMISSIONS)  # no route escapes the permission table
