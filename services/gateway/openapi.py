"""The OpenAPI 3.1 document of the HTTP API, served at `/api/v1/openapi.json` (and kept in
docs/openapi.json by a test, which also checks it against the routes)."""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec
from aiohttp import web

from services.gateway.access import audit
from services.gateway.administration import keys_admin
from services.gateway.imports import detection, live, parameters, report, resources, submit
from services.gateway.params import FLAG
from services.gateway.recovery import backups, interventions, purge, rollbacks
from services.gateway.tables import export, targets
from services.gateway.troubleshooting import records, status, timeline
from services.gateway.verification import verifications
from shared import key_store, rollback

routes = web.RouteTableDef()
DB = "/api/v1/database"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: list[str] | None = None, **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


STR, INT, BOOL, NUM = (
    {"type": "string"},
    {"type": "integer"},
    {"type": "boolean"},
    {"type": "number"},
)
TIME = {"type": "string", "format": "date-time"}
UUID = {"type": "string", "format": "uuid"}
# `table` or `schema.table`, each part a PostgreSQL identifier of at most 63 characters.
TABLE_NAME = {"type": "string", "pattern": key_store.TABLE_PATTERN}

PROBLEM_REASONS = {
    400: "Invalid parameter or body",
    401: "No valid API key",
    403: "The key's role or tables do not permit this",
    404: "Not found (or not yours)",
    408: "The body stopped arriving (TIDEGATE_BODY_IDLE_SECONDS)",
    409: "Conflict",
    410: "No longer kept (retention)",
    413: "File too large",
    415: "Unsupported media type",
    422: "The request cannot be processed",
    429: "Rate limit or concurrent-import limit reached",
    500: "Internal error",
    503: "The database or the broker is unreachable, the gateway is busy or stopping (Retry-After)",
}


def param(name: str, schema: Schema, description: str, *, where: str = "query") -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


def json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def operation(
    summary: str,
    ok: dict[int, Schema],
    problems: tuple[int, ...] = (),
    *,
    params: list[Schema] | None = None,
    public: bool = False,
    **extra: Any,
) -> Schema:
    codes = problems if public else (400, 401, 403, 429, 503, *problems)
    responses: dict[str, Schema] = {str(code): body for code, body in ok.items()}
    for code in sorted({*codes, 500}):
        responses[str(code)] = {
            "description": PROBLEM_REASONS[code],
            "content": {"application/problem+json": {"schema": ref("Problem")}},
        }
    op: Schema = {"summary": summary, "responses": responses, **extra}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


LIMIT = param("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "page size")
IMPORT_ID = param("import_id", UUID, "the import's id", where="path")
KEY_ID = param("key_id", UUID, "the key's id", where="path")
IMPORT_PARAMS = [p.openapi() for p in parameters.PARAMS.values()]

CSV = {"text/csv": {"schema": {"type": "string"}}}
IDEMPOTENCY = param(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "a retry with the same key (and body) answers with the operation the first one started",
    where="header",
)
OPERATION_ID = param("operation_id", UUID, "the operation's id", where="path")
BACKUP_ID = param("backup_id", UUID, "the backup's id", where="path")
# Response bodies defined as msgspec Structs: their schemas are derived from the code.
_, DERIVED = msgspec.json.schema_components(
    [
        rollbacks.Operation,
        backups.Backup,
        rollback.Plan,
        timeline.TimelineEvent,
        verifications.Verification,
        targets.TargetTables,
        resources.Import,
        resources.Imports,
        detection.EncodingDetection,
        report.Report,
        report.RowErrors,
        key_store.Key,
        key_store.KeyWithSecret,
        key_store.Keys,
        key_store.KeySpec,
        keys_admin.Me,
        status.SyncStatus,
        records.RecordHistory,
        audit.AuditPage,
        backups.Backups,
        verifications.Verifications,
        timeline.Timeline,
        rollbacks.Accepted,
        rollbacks.RollbackPreview,
        rollbacks.Cancelled,
        purge.PurgeRequest,
        backups.BackupRequest,
        verifications.VerificationRequest,
        purge.Purged,
    ],
    ref_template="#/components/schemas/{name}",
)


def _accepted(what: str) -> Schema:
    return {
        **json_body(ref("Accepted"), f"{what}; follow the Location"),
        "headers": {"Location": {"schema": STR}},
    }


def _recovery_paths(imports: str) -> dict[str, Schema]:
    store = f"{DB}/backups"
    return {
        f"{imports}/{{import_id}}/rollback": {
            "post": operation(
                "Undo a finished import: delete its rows, restore the rows it updated",
                {
                    200: json_body(ref("RollbackPreview"), "dry_run: what it would do"),
                    202: _accepted("rollback under way (or already)"),
                },
                (404, 409, 422),
                params=[
                    IMPORT_ID,
                    param("force", FLAG, "overwrite rows changed since (reported)"),
                    param("dry_run", FLAG, "report what would be deleted, restored, conflict"),
                    IDEMPOTENCY,
                ],
            )
        },
        f"{imports}/{{import_id}}/cancel": {
            "post": operation(
                "Stop a running import; what it loaded is rolled back, its slot freed",
                {202: json_body(ref("Cancelled"), "cancelled")},
                (404, 409),
                params=[IMPORT_ID],
            )
        },
        f"{imports}/{{import_id}}/failed": {
            "get": operation(
                "The rejected rows as in the file, plus tidegate_line and tidegate_errors",
                {200: {"description": "CSV (UTF-8)", "content": CSV}},
                (404, 410),
                params=[IMPORT_ID],
            )
        },
        f"{imports}/{{import_id}}/retry": {
            "post": operation(
                "A new import linked to this one: of the body, or of its failed rows as they were",
                {
                    202: {
                        **json_body(ref("Import"), "the retry; follow the Location"),
                        "headers": {"Location": {"schema": STR}},
                    }
                },
                (404, 408, 409, 410, 413, 415, 422),
                params=[IMPORT_ID, *IMPORT_PARAMS[1:]],
                requestBody={"required": False, "content": CSV},
            )
        },
        f"{DB}/operations/{{operation_id}}": {
            "get": operation(
                "A rollback, backup, restore or backup deletion, and its outcome",
                {200: json_body(ref("Operation"), "the operation")},
                (404,),
                params=[OPERATION_ID],
            )
        },
        store: {
            "post": operation(
                "Back tables up (pg_dump custom format)",
                {202: _accepted("the backup is being taken")},
                (404, 409, 422),
                params=[IDEMPOTENCY],
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": ref("BackupRequest")}},
                },
            ),
            "get": operation(
                "Backups, newest first",
                {200: json_body(ref("Backups"), "a page")},
                params=[param("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "size")],
            ),
        },
        f"{store}/{{backup_id}}": {
            "get": operation(
                "One backup",
                {200: json_body(ref("Backup"), "the backup")},
                (404,),
                params=[BACKUP_ID],
            ),
            "delete": operation(
                "Delete a backup and its file (admin)",
                {202: _accepted("being deleted")},
                (404, 409, 422),
                params=[BACKUP_ID, IDEMPOTENCY],
            ),
        },
        f"{imports}/{{import_id}}/events": {
            "get": operation(
                "The import's timeline: accepted, each chunk's stages, state changes, re-drives,"
                " refused attempts, dead letters, operations, the final counts",
                {
                    200: {
                        "description": "JSON, or with `Accept: text/event-stream` a live stream"
                        " (Server-Sent Events; resume with `Last-Event-ID`) that ends with"
                        " `event: end` once the import and its operations have finished",
                        "content": {
                            "application/json": {"schema": ref("Timeline")},
                            "text/event-stream": {"schema": STR},
                        },
                    }
                },
                (404,),
                params=[
                    IMPORT_ID,
                    param(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 100_000}, "at most"
                    ),
                    param("Last-Event-ID", STR, "resume a stream after this event", where="header"),
                ],
            )
        },
        f"{DB}/verifications": {
            "post": operation(
                "verify-data: check tables' current rows against the import rules (all tables"
                " imported into or with a rule file, without a body)",
                {
                    202: {
                        **json_body(ref("Verification"), "checking; follow the Location"),
                        "headers": {"Location": {"schema": STR}},
                    }
                },
                (400, 404, 409, 422),
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": ref("VerificationRequest")}},
                },
            ),
            "get": operation(
                "Verifications, newest first (`table`: one table's history)",
                {200: json_body(ref("Verifications"), "a page")},
                params=[LIMIT, param("table", STR, "only those of this `schema.table`")],
            ),
        },
        f"{DB}/verifications/{{verification_id}}": {
            "get": operation(
                "One verification and its report per table",
                {200: json_body(ref("Verification"), "the verification")},
                (404,),
                params=[param("verification_id", UUID, "its id", where="path")],
            )
        },
        "/api/v1/status": {
            "get": operation(
                "Is everything healthy and moving: instances (heartbeats), consumer lag per"
                " group and topic, outbox backlog, dead letters, running imports with ETA,"
                " the latest failures",
                {200: json_body(ref("SyncStatus"), "the status")},
            )
        },
        f"{DB}/records": {
            "get": operation(
                "A row's history: the imports that wrote it (file, line, key), its values"
                " before each update, row errors about its key",
                {200: json_body(ref("RecordHistory"), "the row now and its history")},
                (404, 409),
                params=[
                    {**param("table", TABLE_NAME, "`schema.table` or `table`"), "required": True},
                    {
                        **param(
                            "id", STR, "the primary key's value (comma-separated, or repeated)"
                        ),
                        "required": True,
                    },
                ],
            )
        },
        f"{store}/{{backup_id}}/restore": {
            "post": operation(
                "Restore a backup in one transaction, verified before and after (admin)",
                {202: _accepted("being restored")},
                (404, 409, 422),
                params=[BACKUP_ID, IDEMPOTENCY],
            )
        },
    }


def _paths() -> dict[str, Schema]:
    imports = f"{DB}/imports"
    return {
        "/healthz": {
            "get": operation(
                "Liveness: 503 only if a consumer loop has died",
                {200: {"description": "alive"}},
                (503,),
                public=True,
            )
        },
        "/readyz": {
            "get": operation(
                "Readiness and progress: database, broker, consumers, stuck imports",
                {200: {"description": "ready"}},
                (503,),
                public=True,
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics", {200: {"description": "text exposition"}}, public=True
            )
        },
        "/api/v1/openapi.json": {
            "get": operation("This document", {200: {"description": "OpenAPI 3.1"}}, public=True)
        },
        f"{DB}/import": {
            "post": operation(
                "Import (or validate) a CSV file",
                {
                    202: {
                        **json_body(ref("Import"), "accepted; follow the Location"),
                        "headers": {"Location": {"schema": STR}},
                    }
                },
                (404, 408, 409, 413, 415, 422),
                params=IMPORT_PARAMS,
                requestBody={
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "multipart/form-data": {
                            "schema": obj(["file"], file={"type": "string", "format": "binary"})
                        },
                    },
                },
            )
        },
        f"{DB}/encodings/detect": {
            "post": operation(
                "The encoding an import of this file would use, decided from its first 64 KiB",
                {200: json_body(ref("EncodingDetection"), "the decision")},
                (408, 413, 415, 422),
                params=[param("complete", FLAG, "the body is the whole file")],
                # any bytes are a sample: no body is of the wrong type
                requestBody={"required": True, "content": {"text/csv": {"schema": {}}}},
            )
        },
        imports: {
            "get": operation(
                "Imports this key or its team created (all, for admins), newest first",
                {200: json_body(ref("Imports"), "a page")},
                params=[LIMIT, param("cursor", STR, "from next_cursor")],
            )
        },
        f"{imports}/{{import_id}}": {
            "get": operation(
                "One import's state and counts",
                {200: json_body(ref("Import"), "the import")},
                (404,),
                params=[IMPORT_ID],
            )
        },
        f"{imports}/{{import_id}}/fail": {
            "post": operation(
                "Fail an unfinished import by hand (admin), freeing its concurrency slot",
                {200: json_body(ref("Import"), "the import, now failed")},
                (404, 409),
                params=[
                    IMPORT_ID,
                    param(
                        "reason",
                        {
                            "type": "string",
                            "maxLength": interventions.MAX_REASON,
                            "pattern": "^[^\\x00]*$",
                        },
                        "why (kept in the import's error and the audit log)",
                    ),
                ],
            )
        },
        f"{imports}/{{import_id}}/report": {
            "get": operation(
                "Verification metrics of an import",
                {200: json_body(ref("Report"), "the report")},
                (404,),
                params=[IMPORT_ID],
            )
        },
        f"{imports}/{{import_id}}/errors": {
            "get": operation(
                "Row errors and warnings (JSON pages, or all as CSV)",
                {
                    200: {
                        "description": "row errors",
                        "content": {
                            "application/json": {"schema": ref("RowErrors")},
                            **CSV,
                        },
                    }
                },
                (404,),
                params=[
                    IMPORT_ID,
                    param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
                    param(
                        "offset", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}, "skip"
                    ),
                    param("severity", {"type": "string", "enum": ["error", "warning"]}, "filter"),
                    param("format", {"type": "string", "enum": ["json", "csv"]}, "csv: a download"),
                ],
            )
        },
        f"{DB}/export": {
            "get": operation(
                "A table as CSV (formula cells escaped); export permission",
                {200: {"description": "the rows", "content": CSV}},
                (404,),
                params=[
                    {
                        **param("table", {"type": "string", "minLength": 1}, "`schema.table`"),
                        "required": True,
                    },
                    param("columns", STR, "comma-separated column names (default: all)"),
                ],
            )
        },
        "/api/v1/tables": {
            "get": operation(
                "The tables this key may import into: columns, keys, references, aliases",
                {200: json_body(ref("TargetTables"), "the tables")},
            )
        },
        f"{DB}/imports/stream": {
            "get": operation(
                "Live changes to the imports this key sees, as Server-Sent Events",
                {
                    200: {
                        "description": "an `import` event (data: the Import) per change, its "
                        "id a cursor to resume from (Last-Event-ID); a comment line every 15 s"
                        " when quiet; an `end` event when the key is no longer valid or the"
                        " client fell behind",
                        "content": {"text/event-stream": {"schema": STR}},
                    }
                },
                (400, 429),
                params=[
                    param("import_id", UUID, "only this import"),
                    param("since", TIME, "changes from (default: now); or Last-Event-ID"),
                ],
            )
        },
        "/api/v1/me": {
            "get": operation(
                "The calling key: role, permissions, limits",
                {200: json_body(ref("Me"), "this key")},
            )
        },
        "/api/v1/keys": {
            "get": operation(
                "API keys (admin)",
                {200: json_body(ref("Keys"), "the keys")},
                params=[param("include_revoked", FLAG, "also revoked keys")],
            ),
            "post": operation(
                "Create an API key (admin); the secret is shown once",
                {201: json_body(ref("KeyWithSecret"), "created")},
                (422,),
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": ref("KeySpec")}},
                },
            ),
        },
        "/api/v1/keys/{key_id}": {
            "get": operation(
                "One API key (admin)",
                {200: json_body(ref("Key"), "the key")},
                (404,),
                params=[KEY_ID],
            ),
            "delete": operation(
                "Revoke an API key at once (admin)",
                {200: json_body(ref("Key"), "revoked")},
                (404, 409),
                params=[KEY_ID],
            ),
        },
        "/api/v1/keys/{key_id}/rotate": {
            "post": operation(
                "A new secret for the key (admin); the old one works for grace_seconds",
                {200: json_body(ref("KeyWithSecret"), "rotated")},
                (404,),
                params=[
                    KEY_ID,
                    param(
                        "grace_seconds",
                        {"type": "integer", "minimum": 0, "maximum": 604800},
                        "default 0",
                    ),
                ],
            )
        },
        f"{DB}/purges": {
            "post": operation(
                "Remove a table's rows, or one row's, from every copy tidegate keeps (admin):"
                " chunk copies, lineage, row images, row errors, verifications; backups"
                " holding the table are listed, or deleted with `backups`",
                {200: json_body(ref("Purged"), "what was removed")},
                (404, 409, 422),
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": ref("PurgeRequest")}},
                },
            )
        },
        "/api/v1/audit-log": {
            "get": operation(
                "Audit log, newest first (admin)",
                {200: json_body(ref("AuditPage"), "a page")},
                params=[
                    param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
                    param(
                        "cursor",
                        {"type": "integer", "minimum": 1, "maximum": 2**62},
                        "from next_cursor",
                    ),
                    param("key_id", UUID, "only this key"),
                    param("action", STR, "e.g. import.create"),
                    param(
                        "outcome",
                        {"type": "string", "enum": list(audit.OUTCOMES)},
                        "filter",
                    ),
                    param("since", TIME, "from (inclusive)"),
                    param("until", TIME, "to (exclusive)"),
                ],
            )
        },
    }


# The API's route tables: the gateway serves them, this document describes them.
API_ROUTES = (
    live.routes,  # before handlers': /imports/stream is not an import's id
    submit.routes,
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
        "paths": _with_operation_ids({**_paths(), **_recovery_paths(f"{DB}/imports")}),
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


if __name__ == "__main__":
    sys.stdout.write(render())
