"""SQL of API keys: create, find, list, rotate, revoke."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

import asyncpg
import msgspec

from shared.api_keys import IssuedToken, Principal, Role, issue_token, secret_matches
from shared.db import Conn

KEY_COLUMNS = """
id, lookup, name, role, team, tables, requests_per_minute, concurrent_imports,
max_records_per_import, created_by, created_at, rotated_at, revoked_at, last_used_at,
previous_valid_until
"""


# A key's name or team: printable text (PostgreSQL's text cannot hold NUL; control characters
# would garble listings and logs).
TEXT_PATTERN = "^[^\\x00-\\x1f\\x7f]+$"
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
TABLE_PATTERN = '^[^."\\x00\\n\\r]{1,63}(\\.[^."\\x00\\n\\r]{1,63})?$'  # table or schema.table
TableName = Annotated[str, msgspec.Meta(pattern=TABLE_PATTERN)]


class KeySpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a new key may do (the body of `POST /keys`); `tables` as `schema.table`."""

    name: Label
    role: Role
    team: Label | None = None
    tables: Annotated[list[TableName], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    requests_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    concurrent_imports: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    # a migration's key may import larger files in one go (parts of one are `--split`)
    max_records_per_import: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] | None = None


class Key(msgspec.Struct, kw_only=True):
    """A key as the API shows it: never the secret or its hash."""

    id: uuid.UUID
    prefix: str  # the token's public start, `tg_<lookup>`
    lookup: str
    name: str
    role: Role
    team: str | None
    tables: list[str] | None  # none: every table
    requests_per_minute: int | None  # none: the gateway's default
    concurrent_imports: int | None
    max_records_per_import: int | None  # none: TIDEGATE_MAX_RECORDS_PER_IMPORT
    created_by: uuid.UUID | None
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    previous_valid_until: datetime | None  # the old secret still works until then
    active: bool


class KeyWithSecret(Key, kw_only=True):
    key: str  # the token: shown this once, only its hash is stored


class Keys(msgspec.Struct, kw_only=True):
    items: list[Key]


def render_key(row: asyncpg.Record, *, token: str | None = None) -> Key:
    fields = {name: row[name] for name in Key.__struct_fields__ if name not in ("prefix", "active")}
    shown = {**fields, "prefix": f"tg_{row['lookup']}", "active": row["revoked_at"] is None}
    if token is not None:
        return KeyWithSecret(**shown, key=token)
    return Key(**shown)


async def create_key(
    conn: Conn, spec: KeySpec, *, created_by: uuid.UUID | None
) -> tuple[asyncpg.Record, str]:
    """The new key's row and its token (shown once)."""
    issued = issue_token()
    row = await conn.fetchrow(
        "INSERT INTO tidegate.api_keys (id, lookup, secret_hash, name, role, team, tables,"
        " requests_per_minute, concurrent_imports, max_records_per_import, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        f" RETURNING {KEY_COLUMNS}",
        uuid.uuid4(),
        issued.lookup,
        issued.secret_hash,
        spec.name,
        spec.role,
        spec.team,
        spec.tables,
        spec.requests_per_minute,
        spec.concurrent_imports,
        spec.max_records_per_import,
        created_by,
    )
    assert row is not None
    return row, issued.token


async def authenticate(conn: Conn, lookup: str, secret: str) -> Principal | None:
    """The active key of this token, or None (unknown, revoked or wrong secret)."""
    row = await conn.fetchrow(
        "SELECT id, lookup, name, role, team, tables, requests_per_minute, concurrent_imports,"
        " max_records_per_import, secret_hash,"
        " CASE WHEN previous_valid_until > now() THEN previous_hash END AS previous"
        " FROM tidegate.api_keys WHERE lookup = $1 AND revoked_at IS NULL",
        lookup,
    )
    if row is None or not secret_matches(secret, row["secret_hash"], row["previous"]):
        return None
    return Principal(
        id=row["id"],
        lookup=row["lookup"],
        name=row["name"],
        role=row["role"],
        team=row["team"],
        tables=None if row["tables"] is None else tuple(row["tables"]),
        requests_per_minute=row["requests_per_minute"],
        concurrent_imports=row["concurrent_imports"],
        max_records_per_import=row["max_records_per_import"],
    )


async def get_key(conn: Conn, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {KEY_COLUMNS} FROM tidegate.api_keys WHERE id = $1", key_id)


async def list_keys(conn: Conn, *, include_revoked: bool) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {KEY_COLUMNS} FROM tidegate.api_keys"
        " WHERE $1 OR revoked_at IS NULL ORDER BY created_at, id",
        include_revoked,
    )


async def rotate_key(
    conn: Conn, key_id: uuid.UUID, grace: timedelta
) -> tuple[asyncpg.Record, str] | None:
    """A new secret for an active key (same id, prefix and ownership); the old secret keeps
    working for `grace`. None if there is no such active key."""
    async with conn.transaction():
        lookup = await conn.fetchval(
            "SELECT lookup FROM tidegate.api_keys WHERE id = $1 AND revoked_at IS NULL FOR UPDATE",
            key_id,
        )
        if lookup is None:
            return None
        issued: IssuedToken = issue_token(lookup)
        row = await conn.fetchrow(
            "UPDATE tidegate.api_keys SET previous_hash = secret_hash,"
            " previous_valid_until = now() + $3, secret_hash = $2, rotated_at = now()"
            f" WHERE id = $1 RETURNING {KEY_COLUMNS}",
            key_id,
            issued.secret_hash,
            grace,
        )
    assert row is not None
    return row, issued.token


async def revoke_key(conn: Conn, key_id: uuid.UUID) -> asyncpg.Record | None:
    """Revoke at once (every secret of the key); None if there is no such key."""
    return await conn.fetchrow(
        "UPDATE tidegate.api_keys SET revoked_at = coalesce(revoked_at, now()),"
        " previous_valid_until = NULL"
        f" WHERE id = $1 RETURNING {KEY_COLUMNS}",
        key_id,
    )


async def active_admins(conn: Conn, *, excluding: uuid.UUID | None = None) -> int:
    """How many admin keys are active; inside a transaction, they stay so until it ends."""
    rows = await conn.fetch(
        "SELECT id FROM tidegate.api_keys WHERE role = 'admin' AND revoked_at IS NULL"
        " AND id IS DISTINCT FROM $1 FOR UPDATE",
        excluding,
    )
    return len(rows)


class Budget(msgspec.Struct, frozen=True):
    allowed: bool
    remaining: int
    reset_seconds: float


async def take_request(conn: Conn, key_id: uuid.UUID, limit: int, window_seconds: int) -> Budget:
    """Count one request against the key's sliding-window budget (shared by all gateways)."""
    row = await conn.fetchrow(
        "SELECT allowed, remaining, reset_seconds"
        " FROM tidegate.take_request($1, $2, make_interval(secs => $3))",
        key_id,
        limit,
        window_seconds,
    )
    assert row is not None
    return Budget(row["allowed"], row["remaining"], row["reset_seconds"])
