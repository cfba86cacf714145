"""What every path is written with: JSON Schema helpers, shared parameters, problem
responses, and the schemas derived from the API's Structs (`DERIVED`)."""

from __future__ import annotations

from typing import Any

import msgspec

from services.gateway import params
from services.gateway.access import audit
from services.gateway.administration import keys_admin
from services.gateway.imports import detection, parameters, report, resources, uploads
from services.gateway.recovery import backups, purge, rollbacks
from services.gateway.tables import targets
from services.gateway.troubleshooting import records, status, timeline
from services.gateway.verification import verifications
from shared import key_store, rollback

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
TIME, UUID = params.TIME_SCHEMA, params.UUID_SCHEMA
# `table` or `schema.table`, each part a PostgreSQL identifier of at most 63 characters.
TABLE_NAME = {"type": "string", "pattern": key_store.TABLE_PATTERN}

PROBLEM_REASONS = {
    400: "Invalid parameter or body",
    401: "No valid API key",
    403: "The key's role or tables do not permit this",
    404: "Not found (or not yours)",
    408: "The body stopped arriving (TIDEGATE_BODY_IDLE_SECONDS)",
    409: "Conflict",
    410: "No longer kept (retention, or an upload that expired)",
    412: "Tus-Resumable is not 1.0.0",
    413: "File too large",
    415: "Unsupported media type",
    422: "The request cannot be processed",
    429: "Rate limit or concurrent-import limit reached",
    500: "Internal error",
    503: "The database or the broker is unreachable, the gateway is busy or stopping (Retry-After)",
    460: "Upload-Checksum does not match the body (tus); nothing of it was stored",
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


LIMIT = params.LIMIT.openapi()
IMPORT_ID = params.IMPORT_ID.openapi()
KEY_ID = params.KEY_ID.openapi()
IMPORT_PARAMS = [p.openapi() for p in parameters.PARAMS.values()]
CSV = {"text/csv": {"schema": {"type": "string"}}}
IDEMPOTENCY = params.IDEMPOTENCY.openapi()
OPERATION_ID = params.OPERATION_ID.openapi()
BACKUP_ID = params.BACKUP_ID.openapi()
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
        uploads.UploadStatus,
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


def accepted(what: str) -> Schema:
    return {
        **json_body(ref("Accepted"), f"{what}; follow the Location"),
        "headers": {"Location": {"schema": STR}},
    }
