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


async def test_sweep_deletes_expired_uploads_with_their_bytes(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ids = []
        for expires in ("now() - interval '1 second'", "now() + interval '1 day'"):
            upload_id = await conn.fetchval(
                "INSERT INTO tidegate.uploads (id, key_id, target_table, params, length,"
                f" expires_at) VALUES (gen_random_uuid(), gen_random_uuid(), 'public.t', '{{}}',"
                f" 10, {expires}) RETURNING id"
            )
            await conn.execute(
                "INSERT INTO tidegate.upload_parts (upload_id, start, data) VALUES ($1, 0, 'ab')",
                upload_id,
            )
            ids.append(upload_id)
        gone = await sweep(conn, audit_retention_days=365)
        assert gone["uploads"] >= 1
        left = await conn.fetch(
            "SELECT u.id, count(p.*) AS parts FROM tidegate.uploads u"
            " LEFT JOIN tidegate.upload_parts p ON p.upload_id = u.id"
            " WHERE u.id = ANY($1::uuid[]) GROUP BY u.id",
            ids,
        )
        assert [(r["id"], r["parts"]) for r in left] == [(ids[1], 1)]
        parts = await conn.fetchval(
            "SELECT count(*) FROM tidegate.upload_parts WHERE upload_id = $1", ids[0]
        )
        assert parts == 0
