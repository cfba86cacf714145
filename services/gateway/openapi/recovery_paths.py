"""The recovery paths: rollback, cancel, retry, operations, backups, purge."""

from __future__ import annotations

from services.gateway.openapi.schema import (
    BACKUP_ID,
    CSV,
    DB,
    IDEMPOTENCY,
    IMPORT_ID,
    IMPORT_PARAMS,
    LIMIT,
    OPERATION_ID,
    STR,
    Schema,
    accepted,
    json_body,
    operation,
    ref,
)
from services.gateway.recovery import backups, rollbacks
from services.gateway.troubleshooting import records, timeline
from services.gateway.verification import verifications


def recovery_paths(imports: str) -> dict[str, Schema]:
    store = f"{DB}/backups"
    return {
        f"{imports}/{{import_id}}/rollback": {
            "post": operation(
                "Undo a finished import: delete its rows, restore the rows it updated",
                {
                    200: json_body(ref("RollbackPreview"), "dry_run: what it would do"),
                    202: accepted("rollback under way (or already)"),
                },
                (404, 409, 422),
                params=[
                    IMPORT_ID,
                    rollbacks.FORCE.openapi(),
                    rollbacks.DRY_RUN.openapi(),
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
                {202: accepted("the backup is being taken")},
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
                params=[backups.BACKUPS_LIMIT.openapi()],
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
                {202: accepted("being deleted")},
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
                    timeline.EVENTS_LIMIT.openapi(),
                    timeline.LAST_EVENT_ID.openapi(),
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
                params=[LIMIT, verifications.TABLE_FILTER.openapi()],
            ),
        },
        f"{DB}/verifications/{{verification_id}}": {
            "get": operation(
                "One verification and its report per table",
                {200: json_body(ref("Verification"), "the verification")},
                (404,),
                params=[verifications.VERIFICATION_ID.openapi()],
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
                    records.TABLE.openapi(),
                    records.ID.openapi(),
                ],
            )
        },
        f"{store}/{{backup_id}}/restore": {
            "post": operation(
                "Restore a backup in one transaction, verified before and after (admin)",
                {202: accepted("being restored")},
                (404, 409, 422),
                params=[BACKUP_ID, IDEMPOTENCY],
            )
        },
    }
