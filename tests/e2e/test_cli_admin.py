"""`tidegate keys …`, `tidegate export` and `tidegate audit` against the running gateway."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg

from tests.conftest import Running


async def _cli(*args: str, key: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidegate.cli",
        *args,
        env={"TIDEGATE_API_KEY": key, "PATH": "/usr/bin:/bin", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_keys_export_and_audit_from_the_command_line(
    services: Running, admin_token: str, customers: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    api = ("--api", services.api)
    code, out, err = await _cli(
        "keys", "create", "--name", "cli exporter", "--role", "subscriber",
        "--table", customers, *api, key=admin_token,
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert created["role"] == "subscriber" and created["tables"] == [customers]
    code, out, _ = await _cli("keys", "list", *api, key=admin_token)
    assert created["id"] in {k["id"] for k in json.loads(out)["items"]}

    await db.execute(
        f"INSERT INTO {customers} (id, name, email, signup_date, active)"
        " VALUES (1, '=1+1', 'a@x', '2024-01-01', true)"
    )
    target = tmp_path / "out.csv"
    code, out, err = await _cli(
        "export", "--table", customers, "-o", str(target), *api, key=created["key"]
    )
    assert code == 0, err
    assert "exported 1 rows" in out
    assert target.read_text().splitlines()[1].startswith("1,'=1+1,a@x,")

    code, out, err = await _cli("keys", "create", "--name", "x", "--role", "viewer", *api,
                                key=created["key"])  # fmt: skip
    assert code == 2 and '"/problems/forbidden"' in err  # a subscriber is no admin

    code, out, _ = await _cli("keys", "revoke", created["id"], *api, key=admin_token)
    assert code == 0 and json.loads(out)["active"] is False
    code, _, err = await _cli("export", "--table", customers, *api, key=created["key"])
    assert code == 2 and "invalid-credentials" in err

    code, out, _ = await _cli(
        "audit", "--key-id", created["id"], "--limit", "10", *api, key=admin_token
    )
    actions = [(e["action"], e["status"]) for e in json.loads(out)["items"]]
    assert actions == [("keys.create", 403), ("export.read", 200)]
