"""Administration over HTTP: API keys (create, list, rotate, revoke), the audit log, and
`GET /me` (who this key is: what the console shows after signing in)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
from aiohttp import web

from services.gateway.access import audit
from services.gateway.access.guard import TARGET, principal_of
from services.gateway.imports.resources import respond
from services.gateway.params import (
    FLAG,
    TIME_SCHEMA,
    UUID_SCHEMA,
    Param,
    flag,
    int_param,
    invalid,
    path_id,
    time_param,
    uuid_param,
)
from services.gateway.problems import Problem
from shared import key_store
from shared.api_keys import GRANTS, Permission, Role
from shared.catalog import split_table_name
from shared.service import POOL, SETTINGS

routes = web.RouteTableDef()
KEYS = "/api/v1/keys"
MAX_GRACE = 7 * 24 * 3600
INCLUDE_REVOKED = Param(name="include_revoked", schema=FLAG, description="also revoked keys")
GRACE = Param(
    name="grace_seconds",
    schema={"type": "integer", "minimum": 0, "maximum": MAX_GRACE},
    description="default 0",
)
# The audit log's filters and paging.
AUDIT_PARAMS = (
    Param(
        name="limit",
        schema={"type": "integer", "minimum": 1, "maximum": 1000},
        description="page size",
    ),
    Param(
        name="cursor",
        schema={"type": "integer", "minimum": 1, "maximum": 2**62},
        description="from next_cursor",
    ),
    Param(name="key_id", schema=UUID_SCHEMA, description="only this key"),
    Param(name="action", schema={"type": "string"}, description="e.g. import.create"),
    Param(
        name="outcome",
        schema={"type": "string", "enum": list(audit.OUTCOMES)},
        description="filter",
    ),
    Param(name="since", schema=TIME_SCHEMA, description="from (inclusive)"),
    Param(name="until", schema=TIME_SCHEMA, description="to (exclusive)"),
)
_AUDIT = {p.name: p for p in AUDIT_PARAMS}


def key_url(key_id: object) -> str:
    return f"{KEYS}/{key_id}"


def _spec(request_body: bytes) -> key_store.KeySpec:
    try:
        raw = msgspec.json.decode(request_body)
    except msgspec.DecodeError:
        raise Problem(400, "malformed-body", "Malformed request body", "Send JSON.") from None
    if isinstance(raw, dict):  # JSON has one number type: 5.0 is the integer 5
        for name in key_store.KeySpec.__struct_fields__:
            if isinstance(raw.get(name), float) and raw[name].is_integer():
                raw[name] = int(raw[name])
    try:
        wanted = msgspec.convert(raw, key_store.KeySpec)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid-body", "Invalid request body", str(exc)) from None
    tables = None
    if wanted.tables is not None:
        tables = []
        for raw in wanted.tables:
            parts = split_table_name(raw, "public")
            if parts is None:
                raise Problem(
                    422, "invalid-body", "Invalid request body", f"{raw!r} is not a table name."
                )
            tables.append(".".join(parts))
    return msgspec.structs.replace(wanted, tables=tables)


@routes.post(KEYS, name="keys.create")
async def create_key(request: web.Request) -> web.Response:
    spec = _spec(await request.read())
    async with request.app[POOL].acquire() as conn:
        row, token = await key_store.create_key(conn, spec, created_by=principal_of(request).id)
    request[TARGET] = str(row["id"])
    return respond(
        key_store.render_key(row, token=token), status=201, headers={"Location": key_url(row["id"])}
    )


@routes.get(KEYS, name="keys.list")
async def list_keys(request: web.Request) -> web.Response:
    include_revoked = flag(request, INCLUDE_REVOKED.name)
    async with request.app[POOL].acquire() as conn:
        rows = await key_store.list_keys(conn, include_revoked=include_revoked)
    return respond(key_store.Keys(items=[key_store.render_key(r) for r in rows]))


def _key_id(request: web.Request) -> uuid.UUID:
    key_id = path_id(request, "key_id", "key-not-found", "API key not found")
    request[TARGET] = str(key_id)
    return key_id


def _not_found() -> Problem:
    return Problem(404, "key-not-found", "API key not found")


@routes.get(KEYS + "/{key_id}", name="keys.read")
async def get_key(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await key_store.get_key(conn, _key_id(request))
    if row is None:
        raise _not_found()
    return respond(key_store.render_key(row))


@routes.post(KEYS + "/{key_id}/rotate", name="keys.rotate")
async def rotate_key(request: web.Request) -> web.Response:
    """A new secret for the key; the old one keeps working for `grace_seconds` (default 0)."""
    key_id = _key_id(request)
    grace = timedelta(seconds=int_param(request, GRACE.name, 0, *GRACE.bounds))
    async with request.app[POOL].acquire() as conn:
        rotated = await key_store.rotate_key(conn, key_id, grace)
    if rotated is None:
        raise _not_found()
    row, token = rotated
    return respond(key_store.render_key(row, token=token))


@routes.delete(KEYS + "/{key_id}", name="keys.revoke")
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke at once. The last active admin key cannot be revoked (that would lock
    everyone out of administration)."""
    key_id = _key_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await key_store.get_key(conn, key_id)
        if row is None:
            raise _not_found()
        if row["role"] == "admin" and row["revoked_at"] is None:
            if await key_store.active_admins(conn, excluding=key_id) == 0:
                raise Problem(
                    409,
                    "last-admin-key",
                    "Last admin key",
                    "Create another admin key before revoking the last one.",
                )
        row = await key_store.revoke_key(conn, key_id)
    assert row is not None
    return respond(key_store.render_key(row))


class Me(msgspec.Struct, kw_only=True):
    """The calling key: who it is, what it may do, its limits."""

    id: uuid.UUID
    prefix: str
    name: str
    role: Role
    permissions: list[Permission]
    team: str | None
    tables: list[str] | None  # none: every table
    requests_per_minute: int
    concurrent_imports: int
    max_records_per_import: int  # data rows one import may hold (a bigger file: `--split`)
    max_file_bytes: int  # the largest upload


@routes.get("/api/v1/me", name="me.read")
async def me(request: web.Request) -> web.Response:
    principal = principal_of(request)
    settings = request.app[SETTINGS]
    return respond(
        Me(
            id=principal.id,
            prefix=f"tg_{principal.lookup}",
            name=principal.name,
            role=principal.role,
            permissions=sorted(p for p, roles in GRANTS.items() if principal.role in roles),
            team=principal.team,
            tables=None if principal.tables is None else list(principal.tables),
            requests_per_minute=principal.requests_per_minute or settings.requests_per_minute,
            concurrent_imports=principal.concurrent_imports or settings.concurrent_imports,
            max_records_per_import=principal.max_records_per_import
            or settings.max_records_per_import,
            max_file_bytes=settings.max_file_bytes,
        )
    )


@routes.get("/api/v1/audit-log", name="audit.list")
async def audit_log(request: web.Request) -> web.Response:
    """Newest first; `cursor` (from `next_cursor`) pages back in time."""
    limit = int_param(request, "limit", 100, *_AUDIT["limit"].bounds)
    outcome = request.query.get("outcome")
    if outcome is not None and outcome not in audit.OUTCOMES:
        raise invalid("outcome", "outcome must be success, denied, rejected or error.")
    where = audit.AuditFilter(
        key_id=uuid_param(request, "key_id"),
        action=request.query.get("action"),
        outcome=outcome,
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        before_id=int_param(request, "cursor", 0, *_AUDIT["cursor"].bounds)
        if "cursor" in request.query
        else None,
    )
    async with request.app[POOL].acquire() as conn:
        rows = await audit.list_entries(conn, where, limit + 1)
    page = rows[:limit]
    cursor = str(page[-1]["id"]) if len(rows) > limit else None
    return respond(audit.AuditPage(items=[audit.render_entry(r) for r in page], next_cursor=cursor))
