"""Resumable uploads in PostgreSQL (`tidegate.uploads`, `tidegate.upload_parts`), where every
gateway replica sees them. A part is stored and the upload's offset moved in one short
transaction, only if the offset is still the one the part starts at, so two PATCHes can
never both append at one offset, and what a 204 acknowledged survives a killed gateway.

The part holding the last byte is never stored on its own: the offset reaches the length
in the transaction that records the import (`complete`), so a finished upload is exactly
one import, and an upload whose completion was cut short still asks for its last part."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import asyncpg
import msgspec

from services.gateway.metrics import UPLOAD_BYTES, UPLOAD_OUTCOMES
from shared.db import Conn

PART_BYTES = 1 << 20  # the most bytes stored in one row (and held in memory per PATCH)


class Upload(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    key_id: uuid.UUID
    team: str | None
    target_table: str
    params: dict[str, str]
    filename: str | None
    length: int
    received: int
    import_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    expired: bool  # by the database's clock
    checked: bytes | None  # the early check's state after the stored bytes (EarlyCheck)

    @property
    def finished(self) -> bool:
        return self.import_id is not None


class OffsetMoved(Exception):
    """The upload is no longer at the offset the part starts at (another PATCH moved it)."""


COLUMNS = (
    "id, key_id, team, target_table, params, filename, length, received, import_id,"
    " created_at, expires_at, expires_at <= now() AS expired, checked"
)


def _upload(row: asyncpg.Record) -> Upload:
    return msgspec.convert(
        {**dict(row), "params": msgspec.json.decode(row["params"])}, Upload, strict=False
    )


async def create(
    conn: Conn,
    *,
    key_id: uuid.UUID,
    team: str | None,
    target_table: str,
    params: Mapping[str, str],
    filename: str | None,
    length: int,
    expiry_seconds: float,
) -> Upload:
    insert = (
        "INSERT INTO tidegate.uploads (id, key_id, team, target_table, params, filename,"
        " length, expires_at) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7,"
        " now() + make_interval(secs => $8)) RETURNING "
    )
    row = await conn.fetchrow(
        insert + COLUMNS,
        uuid.uuid4(),
        key_id,
        team,
        target_table,
        msgspec.json.encode(dict(params)).decode(),
        filename,
        length,
        expiry_seconds,
    )
    assert row is not None
    return _upload(row)


async def get(conn: Conn, upload_id: uuid.UUID) -> Upload | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM tidegate.uploads WHERE id = $1",  # noqa: S608
        upload_id,
    )
    return None if row is None else _upload(row)


async def append(
    conn: Conn, upload_id: uuid.UUID, start: int, data: bytes, checked: bytes | None
) -> int:
    """Store `data` at `start` and move the offset past it, with the early check's state
    after it; the new offset. Raises OffsetMoved when the upload is not (or no longer) at
    `start`, or is finished."""
    async with conn.transaction():
        offset = await conn.fetchval(
            "UPDATE tidegate.uploads SET received = received + $3, checked = $4 WHERE id = $1"
            " AND received = $2 AND import_id IS NULL AND received + $3 < length"
            " RETURNING received",
            upload_id,
            start,
            len(data),
            checked,
        )
        if offset is None:
            raise OffsetMoved
        await conn.execute(
            "INSERT INTO tidegate.upload_parts (upload_id, start, data) VALUES ($1, $2, $3)",
            upload_id,
            start,
            data,
        )
    UPLOAD_BYTES.inc(len(data))
    return int(offset)


async def complete(conn: Conn, upload: Upload, start: int, import_id: uuid.UUID) -> None:
    """In the transaction that records the upload's import: the offset moved from `start`
    (where the last part begins) to the length, the import linked, the parts deleted.
    Raises OffsetMoved if another completion came first (the transaction must roll back)."""
    linked = await conn.fetchval(
        "UPDATE tidegate.uploads SET received = length, import_id = $3, checked = NULL"
        " WHERE id = $1"
        " AND received = $2 AND import_id IS NULL RETURNING id",
        upload.id,
        start,
        import_id,
    )
    if linked is None:
        raise OffsetMoved
    await conn.execute("DELETE FROM tidegate.upload_parts WHERE upload_id = $1", upload.id)


async def stored_bytes(pool: asyncpg.Pool, upload_id: uuid.UUID) -> AsyncIterator[bytes]:
    """The stored parts in order, each read with a connection taken for that read only."""
    start = 0
    while True:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT start, data FROM tidegate.upload_parts WHERE upload_id = $1"
                " AND start >= $2 ORDER BY start LIMIT 1",
                upload_id,
                start,
            )
        if row is None:
            return
        data: bytes = row["data"]
        start = int(row["start"]) + len(data)
        yield data


async def delete(conn: Conn, upload_id: uuid.UUID) -> bool:
    """The upload and its bytes deleted (termination, expiry, a refused file)."""
    return (
        await conn.fetchval("DELETE FROM tidegate.uploads WHERE id = $1 RETURNING true", upload_id)
        is not None
    )


async def delete_expired(conn: Conn) -> int:
    """Every upload past its expiry, finished or not, with its bytes; how many."""
    row = await conn.fetchrow(
        "WITH gone AS (DELETE FROM tidegate.uploads WHERE expires_at <= now()"
        " RETURNING import_id IS NULL AS unfinished)"
        " SELECT count(*) AS deleted, count(*) FILTER (WHERE unfinished) AS unfinished"
        " FROM gone"
    )
    assert row is not None
    UPLOAD_OUTCOMES.labels("expired").inc(row["unfinished"])
    return int(row["deleted"])
