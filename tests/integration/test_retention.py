"""The gateway's sweep forgets expired limit state and old audit entries, nothing newer."""

from __future__ import annotations

import asyncpg
import msgspec

from services.gateway.access.retention import sweep
from shared import key_store


async def test_sweep_deletes_only_what_expired(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        spec = msgspec.convert({"name": "retention", "role": "viewer"}, key_store.KeySpec)
        key, _ = await key_store.create_key(conn, spec, created_by=None)
        await conn.execute(
            "INSERT INTO tidegate.key_requests (key_id, at) VALUES"
            " ($1, now() - interval '2 minutes'), ($1, now())",
            key["id"],
        )
        await conn.execute(
            "INSERT INTO tidegate.idempotency_keys (key_id, idem_key, fingerprint, import_id,"
            " created_at) VALUES"
            " ($1, 'old', '\\x00', gen_random_uuid(), now() - interval '25 hours'),"
            " ($1, 'new', '\\x00', gen_random_uuid(), now())",
            key["id"],
        )
        await conn.execute(
            "INSERT INTO tidegate.audit_log (at, key_id, action, method, path, status, outcome,"
            " request_id) VALUES (now() - interval '400 days', $1, 'me.read', 'GET', '/', 200,"
            " 'success', 'old'), (now(), $1, 'me.read', 'GET', '/', 200, 'success', 'new')",
            key["id"],
        )
        gone = await sweep(conn, audit_retention_days=365)
        assert gone["key_requests"] >= 1 and gone["idempotency_keys"] >= 1
        assert gone["audit_log"] >= 1
        for table, column in (
            ("key_requests", "count(*)"),
            ("idempotency_keys", "array_agg(idem_key)"),
            ("audit_log", "array_agg(request_id)"),
        ):
            left = await conn.fetchval(
                f"SELECT {column} FROM tidegate.{table} WHERE key_id = $1",
                key["id"],
            )
            assert left in (1, ["new"]), table
        assert (await sweep(conn, audit_retention_days=0))["audit_log"] == 0
