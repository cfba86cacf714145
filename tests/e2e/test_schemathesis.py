"""Schemathesis (property-based API testing) against the served OpenAPI document: no 5xx,
status codes, content types, headers and bodies as documented, auth enforced. Runs the
`schemathesis` command against the gateway of this test session."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.conftest import MakeKey, Running, bearer

CONFIG = """
headers = {{ Authorization = "Bearer {token}" }}
request-timeout = 15.0
generation.max-examples = {examples}

[parameters]
"query.table" = "{table}"
"path.import_id" = "{import_id}"
"path.key_id" = "{key_id}"

# A schema-valid request these operations may still refuse, for reasons a schema cannot
# state: the file's content (CSV, header, size), column names of the table, an opaque
# cursor, validate_only and dry_run together.
[[operations]]
include-operation-id = "imports.create"
checks.positive_data_acceptance.expected-statuses = [202, 400, 404, 409, 413, 415, 422, 429]

[[operations]]
include-operation-id = "imports.retry"
checks.positive_data_acceptance.expected-statuses = [202, 400, 404, 409, 413, 415, 422, 429]

# An Idempotency-Key that an earlier generated request used elsewhere is refused (422).
[[operations]]
include-operation-id = "backups.create"
checks.positive_data_acceptance.expected-statuses = [202, 404, 409, 422]

[[operations]]
include-operation-id = "imports.rollback"
checks.positive_data_acceptance.expected-statuses = [200, 202, 404, 409, 422]

[[operations]]
include-operation-id = "backups.restore"
checks.positive_data_acceptance.expected-statuses = [202, 404, 409, 422]

[[operations]]
include-operation-id = "backups.delete"
checks.positive_data_acceptance.expected-statuses = [202, 404, 409, 422]

# A query parameter may not hold NUL (PostgreSQL text cannot), which the schema does not say.
[[operations]]
include-operation-id = "audit.list"
checks.positive_data_acceptance.expected-statuses = [200, 400]

# A purge names a table, and its key the primary key's columns with values of their types,
# which a schema cannot say.
[[operations]]
include-operation-id = "purges.create"
checks.positive_data_acceptance.expected-statuses = [200, 404, 409, 422]

# The key's values must be of the key columns' types, which a schema cannot say.
[[operations]]
include-operation-id = "verifications.create"
checks.positive_data_acceptance.expected-statuses = [202, 400, 404, 409, 422]

[[operations]]
include-operation-id = "records.read"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404, 409]

[[operations]]
include-operation-id = "imports.list"
checks.positive_data_acceptance.expected-statuses = [200, 400]

[[operations]]
include-operation-id = "export.read"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404]

# PostgreSQL counts a table name's 63 characters in bytes, which a pattern cannot.
[[operations]]
include-operation-id = "keys.create"
checks.positive_data_acceptance.expected-statuses = [201, 422]

# tus answers a request without its version, or in another, with 412 (Tus-Version); and
# the import's options are refused as POST /import refuses them.
[[operations]]
include-operation-id-regex = "^uploads[.]"
checks.negative_data_rejection.expected-statuses = [400, 401, 403, 404, 405, 406, 409, 412, 415,
                                                    422, 428, 429]
checks.missing_required_header.expected-statuses = [400, 401, 403, 406, 412, 415, 422]
checks.positive_data_acceptance.expected-statuses = [200, 201, 204, 400, 404, 409, 410, 412, 413,
                                                     415, 422, 429, 460]
"""


async def _schemathesis(config: Path, api: str, *options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{api}/api/v1/openapi.json",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--seed",
        "20261124",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


@pytest.mark.timeout(600)
async def test_schemathesis_finds_nothing(
    services: Running, make_key: MakeKey, customers: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    limits = {"requests_per_minute": 1_000_000, "concurrent_imports": 100}
    token = await make_key("admin", name="schemathesis", **limits)
    spare = await make_key("admin", name="schemathesis rotations", **limits)
    async with aiohttp.ClientSession(base_url=services.api, headers=bearer(token)) as session:
        async with session.post(
            "/api/v1/database/import",
            params={"table": customers, "validate_only": "true"},
            data=b"id,name,email,signup_date,active\n1,A,a@x,2024-01-01,yes\n",
            headers={"Content-Type": "text/csv"},
        ) as response:
            import_id = (await response.json())["id"]
        async with session.get("/api/v1/me", headers=bearer(spare)) as response:
            spare_id = (await response.json())["id"]
    values = {"table": customers, "import_id": import_id, "key_id": spare_id}
    key_operations = ("keys.rotate", "keys.revoke")
    last = (*key_operations, "purges.create", "imports.stream")
    runs = (
        # Everything but rotating and revoking keys, with a key that stays valid, purges
        # (they forget what other operations read), the live stream, which answers
        # until the client leaves (test_console_api tests it), and a tus PATCH, whose
        # application/offset+octet-stream body schemathesis cannot make
        # (test_resumable_uploads tests it).
        ("main", token, 30, "--exclude-operation-id", (*last, "uploads.append")),
        # Purges, once everything else has run.
        ("purges", token, 10, "--include-operation-id", ("purges.create",)),
        # Rotating and revoking, on a spare admin key (it may well rotate itself away).
        ("keys", spare, 10, "--include-operation-id", key_operations),
    )
    for name, key, examples, select, operations in runs:
        config = tmp_path / f"{name}.toml"
        config.write_text(CONFIG.format(token=key, examples=examples, **values))
        options = [part for op in operations for part in (select, op)]
        code, out = await _schemathesis(config, services.api, *options)
        assert code == 0, out
    assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 0  # only validate/dry runs
