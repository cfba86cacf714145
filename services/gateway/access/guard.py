"""Every request but the public ones: authenticate the API key, take one request from its
rate budget (shared by all gateways, in PostgreSQL), check the route's permission, and
record the outcome in the audit log.

Routes are allowed by name in ROUTE_PERMISSIONS; a route without an entry is refused (fail
closed). A handler refines the check where the answer depends on the request (the import
mode, the table, the owner of an import).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from services.gateway.access import audit
from services.gateway.problems import Problem
from shared import key_store
from shared.api_keys import GRANTS, Permission, Principal, parse_token
from shared.service import POOL, SETTINGS

log = structlog.get_logger(__name__)

PRINCIPAL = web.RequestKey("principal", Principal)
TOKEN = web.RequestKey("token", tuple[str, str])  # (lookup, secret) the request was made with
TARGET = web.RequestKey("target", str)  # what the action was about (import id, table, key)
AUDIT_DETAIL = web.RequestKey("audit_detail", dict[str, Any])
EXTRA_HEADERS = web.RequestKey("extra_headers", dict[str, str])

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"})
CONSOLE = "/console"  # the console's files hold no data: its pages call the API with a key
WINDOW_SECONDS = 60

# Route name → the permissions any one of which admits the request.
ROUTE_PERMISSIONS: dict[str, tuple[Permission, ...]] = {
    "imports.create": ("import", "validate"),
    "uploads.options": ("import", "validate"),
    "uploads.create": ("import", "validate"),
    "uploads.offset": ("import", "validate"),
    "uploads.read": ("import", "validate"),
    "uploads.append": ("import", "validate"),
    "uploads.delete": ("import", "validate"),
    "encodings.detect": ("import", "validate"),
    "imports.list": ("import", "validate"),
    "imports.stream": ("import", "validate"),
    "tables.list": ("import", "validate"),
    "imports.read": ("import", "validate"),
    "imports.report": ("import", "validate"),
    "imports.errors": ("import", "validate"),
    "imports.fail": ("admin",),
    "imports.rollback": ("import",),
    "imports.cancel": ("import",),
    "imports.retry": ("import", "validate"),
    "imports.failed": ("import", "validate"),
    "operations.read": ("import", "validate"),
    "backups.create": ("import",),
    "backups.list": ("import",),
    "backups.read": ("import",),
    "backups.restore": ("admin",),
    "backups.delete": ("admin",),
    "records.read": ("import", "export"),
    "imports.events": ("import", "validate"),
    "status.read": ("validate",),
    "verifications.create": ("validate",),
    "verifications.list": ("validate",),
    "verifications.read": ("validate",),
    "export.read": ("export",),
    "me.read": ("import", "validate", "export"),
    "keys.create": ("admin",),
    "keys.list": ("admin",),
    "keys.read": ("admin",),
    "keys.rotate": ("admin",),
    "keys.revoke": ("admin",),
    "audit.list": ("admin",),
    "purges.create": ("admin",),
}


def _console(path: str) -> bool:
    return path == CONSOLE or path.startswith(CONSOLE + "/")


def unauthorized(code: str, detail: str) -> Problem:
    problem = Problem(401, code, "Not authenticated", detail)
    error = "invalid_request" if code == "missing-credentials" else "invalid_token"
    problem.headers["WWW-Authenticate"] = f'Bearer realm="tidegate", error="{error}"'
    return problem


def forbidden(detail: str, **extra: Any) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail, **extra)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require(request: web.Request, permission: Permission) -> Principal:
    """The request's key, if its role grants `permission`; else 403."""
    principal = request[PRINCIPAL]
    if not principal.may(permission):
        raise forbidden(
            f"The {principal.role} role may not {permission}.",
            role=principal.role,
            required=sorted(GRANTS[permission]),
        )
    return principal


def require_table(request: web.Request, qualified_name: str) -> None:
    principal = request[PRINCIPAL]
    if not principal.may_use_table(qualified_name):
        raise forbidden(
            f"This key may not use table {qualified_name}.",
            table=qualified_name,
            allowed_tables=list(principal.tables or ()),
        )


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthorized("invalid-credentials", "Use Authorization: Bearer <API key>.")
        return value.strip()
    return request.headers.get("X-API-Key")


async def _authenticate(request: web.Request) -> Principal:
    token = _token(request)
    if token is None:
        raise unauthorized(
            "missing-credentials", "Send an API key: Authorization: Bearer <API key>."
        )
    parsed = parse_token(token)
    if parsed is None:
        raise unauthorized("invalid-credentials", "That is not a tidegate API key (tg_…).")
    request[AUDIT_DETAIL]["key_lookup"] = parsed[0]
    request[TOKEN] = parsed
    async with request.app[POOL].acquire() as conn:
        principal = await key_store.authenticate(conn, *parsed)
    if principal is None:
        raise unauthorized("invalid-credentials", "The API key is unknown, revoked or wrong.")
    return principal


async def _take_request(request: web.Request, principal: Principal) -> None:
    limit = principal.requests_per_minute or request.app[SETTINGS].requests_per_minute
    async with request.app[POOL].acquire() as conn:
        budget = await key_store.take_request(conn, principal.id, limit, WINDOW_SECONDS)
    seconds = math.ceil(budget.reset_seconds)
    headers = request[EXTRA_HEADERS]
    headers["RateLimit-Policy"] = f'"per-key";q={limit};w={WINDOW_SECONDS}'
    headers["RateLimit"] = f'"per-key";r={budget.remaining};t={seconds}'
    if not budget.allowed:
        headers["Retry-After"] = str(max(seconds, 1))
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"This key may make {limit} requests per {WINDOW_SECONDS} s; retry after "
            f"{max(seconds, 1)} s.",
            limit=limit,
            window_seconds=WINDOW_SECONDS,
        )


def _allowed_by_route(request: web.Request, principal: Principal) -> None:
    name = request.match_info.route.name
    if name is None:  # no such route (404/405): the router's own answer follows
        return
    permissions = ROUTE_PERMISSIONS.get(name, ())
    if not any(principal.may(p) for p in permissions):
        raise forbidden(
            f"The {principal.role} role may not use this endpoint.",
            role=principal.role,
            required=sorted({role for p in permissions for role in GRANTS[p]}),
        )


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request_id = uuid.uuid4().hex
    request[EXTRA_HEADERS] = {"X-Request-Id": request_id}
    if request.path in PUBLIC_PATHS or _console(request.path):
        return await handler(request)
    request[AUDIT_DETAIL] = {}
    principal = await _authenticate(request)
    request[PRINCIPAL] = principal
    await _take_request(request, principal)
    _allowed_by_route(request, principal)
    # Log lines of the request name the key and the request id (as the audit log does).
    with structlog.contextvars.bound_contextvars(key=principal.lookup, request_id=request_id):
        return await handler(request)


async def record(request: web.Request, status: int) -> None:
    """The audit log entry of a request that was not to a public path (call once the
    status is known, whatever happened)."""
    if AUDIT_DETAIL not in request:
        return
    principal = request.get(PRINCIPAL)
    request_id = request[EXTRA_HEADERS]["X-Request-Id"]
    try:
        async with request.app[POOL].acquire() as conn:
            await audit.record(
                conn,
                principal=principal,
                key_lookup=request[AUDIT_DETAIL].pop("key_lookup", None),
                action=request.match_info.route.name or "unmatched",
                method=request.method,
                path=request.path,
                target=request.get(TARGET),
                status=status,
                remote=request.remote,
                request_id=request_id,
                detail=request[AUDIT_DETAIL] or None,
            )
    except (OSError, TimeoutError, asyncpg.PostgresError):  # logged, never the answer
        log.exception("audit record failed", request_id=request_id)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the request id and rate-limit fields on every answer, streamed
    ones and errors included."""
    for name, value in request.get(EXTRA_HEADERS, {}).items():
        response.headers[name] = value
