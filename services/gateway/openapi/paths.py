"""The paths of imports, detection, troubleshooting, verification, tables, keys."""

from __future__ import annotations

from services.gateway.administration import keys_admin
from services.gateway.imports import detection, live, submit
from services.gateway.openapi.schema import (
    CSV,
    DB,
    IMPORT_ID,
    IMPORT_PARAMS,
    KEY_ID,
    LIMIT,
    STR,
    Schema,
    json_body,
    obj,
    operation,
    ref,
)
from services.gateway.recovery import interventions
from services.gateway.tables import export


def paths() -> dict[str, Schema]:
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
                params=[detection.COMPLETE.openapi()],
                # any bytes are a sample: no body is of the wrong type
                requestBody={"required": True, "content": {"text/csv": {"schema": {}}}},
            )
        },
        imports: {
            "get": operation(
                "Imports this key or its team created (all, for admins), newest first",
                {200: json_body(ref("Imports"), "a page")},
                params=[LIMIT, submit.CURSOR.openapi()],
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
                    interventions.REASON.openapi(),
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
                    *(p.openapi() for p in submit.ERRORS_PARAMS),
                ],
            )
        },
        f"{DB}/export": {
            "get": operation(
                "A table as CSV (formula cells escaped); export permission",
                {200: {"description": "the rows", "content": CSV}},
                (404,),
                params=[export.TABLE.openapi(), export.COLUMNS.openapi()],
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
                    live.ONE_IMPORT.openapi(),
                    live.SINCE.openapi(),
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
                params=[keys_admin.INCLUDE_REVOKED.openapi()],
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
                    keys_admin.GRACE.openapi(),
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
                params=[p.openapi() for p in keys_admin.AUDIT_PARAMS],
            )
        },
    }
