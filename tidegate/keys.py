"""API keys made straight in the database, for whoever runs the stack: the first admin key
the dev stack prints, `tidegate keys bootstrap`, and the keys of the demo and the tests."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared import key_store
from shared.db import migrate

# Serialises "create the first admin key unless one exists" across processes.
_FIRST_ADMIN_LOCK = 0x7467_6B31


async def create_key(database_url: str, name: str, role: str = "admin", **limits: Any) -> str:
    """A new key's token (shown once)."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        spec = msgspec.convert({"name": name, "role": role, **limits}, key_store.KeySpec)
        _, token = await key_store.create_key(conn, spec, created_by=None)
        return token
    finally:
        await conn.close()


async def first_admin_key(database_url: str) -> str | None:
    """Create an admin key named "first admin" if no admin key is active; its token, else
    None (an admin already exists: use `tidegate keys bootstrap` to make another)."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _FIRST_ADMIN_LOCK)
            if await key_store.active_admins(conn):
                return None
            spec = key_store.KeySpec(name="first admin", role="admin")
            _, token = await key_store.create_key(conn, spec, created_by=None)
            return token
    finally:
        await conn.close()
