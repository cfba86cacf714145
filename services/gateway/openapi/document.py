"""The document, the route that serves it, and the API's route tables it describes."""

from __future__ import annotations

import json

from aiohttp import web

from services.gateway.administration import keys_admin
from services.gateway.imports import detection, live, submit, uploads
from services.gateway.openapi.paths import paths
from services.gateway.openapi.recovery_paths import recovery_paths
from services.gateway.openapi.schema import (
    DB,
    DERIVED,
    INT,
    STR,
    Schema,
    obj,
)
from services.gateway.openapi.upload_paths import upload_paths
from services.gateway.recovery import backups, interventions, purge, rollbacks
from services.gateway.tables import export, targets
from services.gateway.troubleshooting import records, status, timeline
from services.gateway.verification import verifications

routes = web.RouteTableDef()


# The API's route tables: the gateway serves them, this document describes them.
API_ROUTES = (
    live.routes,  # before handlers': /imports/stream is not an import's id
    submit.routes,
    uploads.routes,
    detection.routes,
    interventions.routes,
    rollbacks.routes,
    backups.routes,
    records.routes,
    timeline.routes,
    status.routes,
    verifications.routes,
    export.routes,
    keys_admin.routes,
    purge.routes,
    targets.routes,
)


def _with_operation_ids(paths: dict[str, Schema]) -> dict[str, Schema]:
    """operationId = the route's name (the name the audit log and the permissions use)."""
    for table in API_ROUTES:
        for route in table:
            assert isinstance(route, web.RouteDef)
            paths[route.path][route.method.lower()]["operationId"] = route.kwargs["name"]
    return paths


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tidegate",
            "version": "1.0.0",
            "description": "Import CSV data into PostgreSQL. Errors are RFC 9457 problem details "
            "(docs/problems.md). Every response of an authenticated request carries the "
            "RateLimit and RateLimit-Policy fields.",
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": _with_operation_ids(
            {**paths(), **recovery_paths(f"{DB}/imports"), **upload_paths()}
        ),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "tg_… API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                "Problem": {
                    **obj(["type", "title", "status"], type=STR, title=STR, status=INT, detail=STR),
                    "additionalProperties": True,
                },
                **DERIVED,
            },
        },
    }


@routes.get("/api/v1/openapi.json")
async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"
