"""Concurrent imports per key, enforced by PostgreSQL for every gateway replica.

A running import holds a slot `0 ≤ slot < limit` of its key; the unique index
`imports_running_slot` admits one unfinished import per (key, slot). While an import is
being recorded, its slot is held by a transaction-level advisory lock, so a concurrent one
takes another slot or is refused at once instead of waiting; a gateway that dies releases
it with its connection.
"""

from __future__ import annotations

import uuid

from services.gateway.problems import Problem
from shared.db import Conn

RUNNING_SLOT_INDEX = "imports_running_slot"


async def claim_slot(conn: Conn, key_id: uuid.UUID, limit: int) -> int | None:
    """A free slot of the key, locked until the transaction ends; None when all are taken
    (by running imports or by imports being recorded). Call inside a transaction. Only the
    slot returned is locked: the lock is tried slot by slot, never in a WHERE clause the
    planner may evaluate for every row."""
    free = await conn.fetch(
        "SELECT s FROM generate_series(0, $2 - 1) AS s"
        " WHERE NOT EXISTS (SELECT 1 FROM tidegate.imports i"
        "   WHERE i.key_id = $1 AND i.slot = s AND i.finished_at IS NULL)"
        " ORDER BY s",
        key_id,
        limit,
    )
    for row in free:
        slot = int(row["s"])
        if await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtext($1::uuid::text), $2)", key_id, slot
        ):
            return slot
    return None


async def running_imports(conn: Conn, key_id: uuid.UUID) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM tidegate.imports WHERE key_id = $1 AND slot IS NOT NULL"
        " AND finished_at IS NULL ORDER BY created_at",
        key_id,
    )
    return [str(r["id"]) for r in rows]


def too_many_running(limit: int, running: list[str], links: list[str]) -> Problem:
    what = (
        f"import {', '.join(running)} is still running"
        if running
        else "another import is being uploaded"
    )
    return Problem(
        429,
        "too-many-concurrent-imports",
        "Too many concurrent imports",
        f"This key may run {limit} import(s) at a time and {what}; retry when it has finished.",
        concurrent_imports=limit,
        running=links,
    )
