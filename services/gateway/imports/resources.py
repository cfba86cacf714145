"""The import resource and its report as the API shows them: msgspec Structs, encoded by
the handlers, from which the OpenAPI document derives their schemas (one source)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from shared.events import DuplicatePolicy, Mode
from shared.import_status import State
from shared.text_encoding import DecidedBy

API = "/api/v1/database"


class Counts(msgspec.Struct, kw_only=True):
    file_rows: int | None  # data rows the gateway read (none yet for an upstream import)
    total: int
    valid: int
    loaded: int
    updated: int
    skipped: int
    failed: int
    duplicates: int
    empty_rows: int  # rows whose every field was empty: passed over like blank lines


class Chunks(msgspec.Struct, kw_only=True):
    total: int | None
    validated: int
    loaded: int


class Options(msgspec.Struct, kw_only=True):
    auto_retry: int
    rollback_on_failure: bool
    atomic: bool
    checkpoint_interval: int
    backup_id: uuid.UUID | None


class Checkpoint(msgspec.Struct, kw_only=True):
    """Chunks (of checkpoint_interval records) committed and never loaded again, the rows
    they held, and when the last one committed."""

    chunks: int
    rows: int
    at: str | None


class RollbackState(msgspec.Struct, kw_only=True):
    """The latest (non-dry-run) rollback of the import."""

    operation: uuid.UUID
    status: str
    trigger: str
    error: str | None
    link: str


class Recovery(msgspec.Struct, kw_only=True):
    redrives: int
    last_redrive_at: datetime | None
    chunks_failed: int
    checkpoint: Checkpoint
    rollback: RollbackState | None


class Import(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    table: str
    columns: list[str]
    ignored_columns: list[str]  # header names the table lacks, left out (extra_columns=ignore)
    status: State
    mode: Mode
    on_duplicate: DuplicatePolicy | None
    source: Literal["http", "kafka"]
    filename: str | None
    encoding: str | None
    encoding_decided_by: DecidedBy | None  # declared, charset (Content-Type), bom, detected
    encoding_confidence: float | None  # detected: share of non-ASCII characters read plausibly
    delimiter: str | None
    chunk_size: int
    counts: Counts
    chunks: Chunks
    progress: float | None  # chunks loaded of all
    error: str | None
    producer: str | None
    parent_id: uuid.UUID | None  # the import this one retries
    options: Options
    recovery: Recovery
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    links: dict[str, str]


class Imports(msgspec.Struct, kw_only=True):
    items: list[Import]
    next_cursor: str | None


def import_url(import_id: uuid.UUID | str) -> str:
    return f"{API}/imports/{import_id}"


def _rollback_of(raw: str | None) -> RollbackState | None:
    if raw is None:
        return None
    found: dict[str, Any] = msgspec.json.decode(raw)
    return msgspec.convert(
        {**found, "link": f"{API}/operations/{found['operation']}"}, RollbackState
    )


def import_of(row: dict[str, Any] | asyncpg.Record) -> Import:
    import_id = row["id"]
    chunks_total = row["chunks_total"]
    links = {
        "self": import_url(import_id),
        "report": f"{import_url(import_id)}/report",
        "errors": f"{import_url(import_id)}/errors",
        "errors_csv": f"{import_url(import_id)}/errors?format=csv",
        "failed": f"{import_url(import_id)}/failed",
    }
    if row["parent_id"]:
        links["parent"] = import_url(row["parent_id"])
    if row["backup_id"]:
        links["backup"] = f"{API}/backups/{row['backup_id']}"
    return Import(
        id=import_id,
        table=row["target_table"],
        columns=list(row["columns"]),
        ignored_columns=list(row["ignored_columns"]),
        status=row["status"],
        mode=row["mode"],
        on_duplicate=row["on_duplicate"],
        source=row["source"],
        filename=row["filename"],
        encoding=row["encoding"],
        encoding_decided_by=row["encoding_decided_by"],
        encoding_confidence=None
        if row["encoding_confidence"] is None
        else round(row["encoding_confidence"], 3),
        delimiter=row["delimiter"],
        chunk_size=row["chunk_size"],
        counts=Counts(
            file_rows=row["file_rows"],
            total=row["total_rows"],
            valid=row["valid_rows"],
            loaded=row["loaded_rows"],
            updated=row["updated_rows"],
            skipped=row["skipped_rows"],
            failed=row["failed_rows"],
            duplicates=row["duplicate_rows"],
            empty_rows=row["empty_rows"],
        ),
        chunks=Chunks(
            total=chunks_total, validated=row["chunks_validated"], loaded=row["chunks_loaded"]
        ),
        progress=(row["chunks_loaded"] / chunks_total) if chunks_total else None,
        error=row["error"],
        producer=row["producer"],
        parent_id=row["parent_id"],
        options=Options(
            auto_retry=row["auto_retry"],
            rollback_on_failure=row["rollback_on_failure"],
            atomic=row["atomic"],
            checkpoint_interval=row["chunk_size"],
            backup_id=row["backup_id"],
        ),
        recovery=Recovery(
            redrives=row["redrives"],
            last_redrive_at=row["last_redrive_at"],
            chunks_failed=row["chunks_failed"],
            checkpoint=msgspec.json.decode(row["checkpoint"], type=Checkpoint),
            rollback=_rollback_of(row["rollback"]),
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        links=links,
    )


def respond(
    body: msgspec.Struct, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer encoded straight from its Struct."""
    return web.Response(
        body=msgspec.json.encode(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )
