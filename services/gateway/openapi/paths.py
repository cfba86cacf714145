"""The paths of imports, detection, troubleshooting, verification, tables, keys."""

from __future__ import annotations

from services.gateway.access import audit
from services.gateway.openapi.schema import (
    CSV,
    DB,
    IMPORT_ID,
    IMPORT_PARAMS,
    KEY_ID,
    LIMIT,
    STR,
    TIME,
    UUID,
    Schema,
    json_body,
    obj,
    operation,
    param,
    ref,
)
from services.gateway.params import FLAG
from services.gateway.recovery import interventions


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
