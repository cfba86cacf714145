"""Wiring of the gateway: HTTP API, outbox relay, shared resources."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.gateway import lifecycle
from services.gateway.access.guard import access_middleware, add_headers, record
from services.gateway.access.retention import retention_context
from services.gateway.access.streams import streams_context
from services.gateway.console import routes as console
from services.gateway.intake.relay import relay_context
from services.gateway.intake.upload_gate import UPLOADS, UploadGate
from services.gateway.metrics import HTTP_REQUESTS, HTTP_SECONDS
from services.gateway.openapi import document as openapi
from services.gateway.problems import problem_middleware
from services.gateway.tables.lookup import RULES, TABLES
from shared.catalog import TableCache
from shared.config import Settings
from shared.rulebook import RuleBook
from shared.service import service_app

# Largest request line and header field: beyond them aiohttp answers 400 before any handler.
MAX_LINE = MAX_FIELD = 8190


@web.middleware
async def outcome_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The final status of every request (after problem conversion): into the metrics, and
    into the audit log."""
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    else:
        status = response.status
        return response
    finally:
        HTTP_REQUESTS.labels(request.method, name, str(status)).inc()
        HTTP_SECONDS.labels(request.method, name).observe(time.perf_counter() - started)
        await record(request, status)


def create_app(settings: Settings) -> web.Application:
    app = service_app(
        settings,
        serves_clients=True,
        middlewares=[outcome_middleware, problem_middleware, access_middleware],
        handler_args={"max_line_size": MAX_LINE, "max_field_size": MAX_FIELD},
    )
    app[TABLES] = TableCache(settings.allowed_schemas, ttl_seconds=2.0)
    app[RULES] = RuleBook(settings.rules_dir)
    lifecycle.install(app)
    app[UPLOADS] = UploadGate(settings.max_uploads)
    app.on_response_prepare.append(add_headers)
    app.cleanup_ctx.append(relay_context)
    app.cleanup_ctx.append(retention_context)
    app.cleanup_ctx.append(streams_context)
    for table in (*openapi.API_ROUTES, openapi.routes, console.routes):
        app.add_routes(table)
    return app
