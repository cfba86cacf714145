"""The audit log: every authenticated request (and every refused credential) with who,
what, when and the outcome; admins read it at `GET /api/v1/audit-log`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal, get_args

import asyncpg
import msgspec

from shared.api_keys import Principal
from shared.db import Conn

Outcome = Literal["success", "denied", "rejected", "error"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)


def outcome(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403, 429):
        return "denied"
    return "rejected" if status < 500 else "error"


async def record(
    conn: Conn,
    *,
    principal: Principal | None,
    key_lookup: str | None,
    action: str,
    method: str,
    path: str,
    target: str | None,
    status: int,
    remote: str | None,
    request_id: str,
    detail: dict[str, Any] | None,
) -> None:
    await conn.execute(
        "INSERT INTO tidegate.audit_log (key_id, key_lookup, role, action, method, path,"
        " target, status, outcome, remote, request_id, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)",
        None if principal is None else principal.id,
        key_lookup if principal is None else principal.lookup,
        None if principal is None else principal.role,
        action,
        method,
        path[:2000],
        target,
        status,
        outcome(status),
        remote,
        request_id,
        None if detail is None else json.dumps(detail),
    )


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    """The filters of `GET /audit-log`; every one optional."""

    key_id: uuid.UUID | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # the cursor: entries older than this one


async def list_entries(conn: Conn, where: AuditFilter, limit: int) -> list[asyncpg.Record]:
    """Newest first."""
    return await conn.fetch(
        "SELECT id, at, key_id, key_lookup, role, action, method, path, target, status,"
        " outcome, remote, request_id, detail FROM tidegate.audit_log"
        " WHERE ($1::uuid IS NULL OR key_id = $1) AND ($2::text IS NULL OR action = $2)"
        " AND ($3::text IS NULL OR outcome = $3) AND ($4::timestamptz IS NULL OR at >= $4)"
        " AND ($5::timestamptz IS NULL OR at < $5) AND ($6::bigint IS NULL OR id < $6)"
        " ORDER BY id DESC LIMIT $7",
        where.key_id,
        where.action,
        where.outcome,
        where.since,
        where.until,
        where.before_id,
        limit,
    )


class AuditEntry(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    key_id: uuid.UUID | None
    key_lookup: str | None
    role: str | None
    action: str  # the route's name, e.g. imports.create
    method: str
    path: str
    target: str | None  # what the action was about (import id, table, key)
    status: int
    outcome: Outcome
    remote: str | None
    request_id: str
    detail: dict[str, Any] | None


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEntry]
    next_cursor: str | None


def render_entry(row: asyncpg.Record) -> AuditEntry:
    fields = {name: row[name] for name in AuditEntry.__struct_fields__ if name != "detail"}
    detail = None if row["detail"] is None else json.loads(row["detail"])
    return AuditEntry(**fields, detail=detail)
