"""`Idempotency-Key` on requests that create something (an import, a retry, or an
operation: rollback, backup, restore, backup deletion): a retried request gets what the
first one created; the same key with another path, body or parameters is refused (422);
while the first request is being received by the same gateway, or recorded by any, 409.
Answers are remembered for 24 hours, per API key.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from services.gateway.problems import Problem
from shared.db import Conn

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def idempotency_key(request: web.Request) -> str | None:
    """The header's value (a bare token or a quoted sf-string), or None; 400 if unusable."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not 0 < len(value) <= MAX_LENGTH or not all("!" <= ch <= "~" for ch in value):
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            f"The {HEADER} header must be 1 to {MAX_LENGTH} visible ASCII characters.",
        )
    return value


class Earlier(msgspec.Struct, frozen=True):
    """What the first request with a key created."""

    fingerprint: bytes
    import_id: uuid.UUID | None
    operation_id: uuid.UUID | None


class Fingerprint:
    """SHA-256 of the request's path, parameters and the body's bytes, fed as they stream."""

    def __init__(self, request: web.Request) -> None:
        self._hash = hashlib.sha256()
        self._hash.update(f"{request.method} {request.path}\n".encode())
        for name, value in sorted(request.query.items()):
            self._hash.update(f"{name}={value}\n".encode())

    async def tee(self, blocks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for block in blocks:
            self._hash.update(block)
            yield block

    async def consume(self, blocks: AsyncIterator[bytes]) -> bytes:
        async for block in blocks:
            self._hash.update(block)
        return self._hash.digest()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()


def in_use() -> Problem:
    return Problem(
        409,
        "idempotency-key-in-use",
        "Request in progress",
        f"A request with this {HEADER} is still being processed; retry later.",
    )


async def lock(conn: Conn, key_id: uuid.UUID, key: str) -> Earlier | None:
    """Hold the key for this transaction; what an earlier request with it created, if
    any. 409 while another request with the key is in progress."""
    locked = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtext($1::uuid::text || ':' || $2), -1)", key_id, key
    )
    if not locked:
        raise in_use()
    return await find(conn, key_id, key)


async def find(conn: Conn, key_id: uuid.UUID, key: str) -> Earlier | None:
    """What an earlier request with the key created, if any (without holding the key)."""
    row = await conn.fetchrow(
        "SELECT fingerprint, import_id, operation_id FROM tidegate.idempotency_keys"
        " WHERE key_id = $1 AND idem_key = $2 AND created_at > now() - interval '24 hours'",
        key_id,
        key,
    )
    if row is None:
        return None
    return Earlier(bytes(row["fingerprint"]), row["import_id"], row["operation_id"])


def reused(key: str) -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        f"{HEADER} {key!r} was used with another request (body or parameters); use a new key.",
    )


async def remember(
    conn: Conn,
    key_id: uuid.UUID,
    key: str,
    fingerprint: bytes,
    *,
    import_id: uuid.UUID | None = None,
    operation_id: uuid.UUID | None = None,
) -> None:
    await conn.execute(
        "DELETE FROM tidegate.idempotency_keys"
        " WHERE key_id = $1 AND created_at <= now() - interval '24 hours'",
        key_id,
    )
    await conn.execute(
        "INSERT INTO tidegate.idempotency_keys"
        " (key_id, idem_key, fingerprint, import_id, operation_id) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        key,
        fingerprint,
        import_id,
        operation_id,
    )
