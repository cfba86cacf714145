"""The verification report of an import or validation (the seed's metrics), and its row
errors as a CSV download."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from typing import Literal

import asyncpg
import msgspec

from services.gateway.imports.failed_rows import Reconciliation
from services.gateway.intake import import_store
from services.gateway.intake.spool import Spool
from shared.db import Conn
from shared.error_codes import FORMAT, REQUIRED, ErrorCode, codes_in
from shared.events import Mode
from shared.field_counts import FieldCount, by_field
from shared.import_status import State
from shared.spreadsheet import escape_cell

CSV_COLUMNS = ("line", "column", "severity", "code", "message", "value", "stage")


class Report(msgspec.Struct, kw_only=True):
    """The seed's verification metrics of one import (or validation), and counts by code."""

    import_id: uuid.UUID
    table: str
    mode: Mode
    status: State
    finished: bool
    total_records: int
    valid_records: int
    loaded_records: int
    updated_records: int
    skipped_records: int
    failed_records: int
    duplicate_count: int
    warning_count: int
    missing_required_fields: list[FieldCount]
    invalid_format_fields: list[FieldCount]
    errors_by_code: dict[str, int]
    error: str | None
    links: dict[str, str]
    reconciliation: Reconciliation | None = None  # GET /report adds it


class RowError(msgspec.Struct, kw_only=True):
    line: int  # the file line the row starts on (the header is line 1)
    column: str | None  # none: the error is about the whole row
    severity: Literal["error", "warning"]
    code: ErrorCode  # docs/problems.md lists them
    message: str
    value: str | None
    stage: str


class RowErrors(msgspec.Struct, kw_only=True):
    total: int
    limit: int
    offset: int
    items: list[RowError]


async def build_report(conn: Conn, row: asyncpg.Record) -> Report:
    required, formats = set(codes_in(REQUIRED)), set(codes_in(FORMAT))
    missing: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    warnings = 0
    for entry in await import_store.error_counts(conn, row["id"]):
        by_code[entry["code"]] += entry["n"]
        if entry["severity"] == "warning":
            warnings += entry["n"]
            continue
        field = entry["column_name"] or "(row)"
        if entry["code"] in required:
            missing[field] += entry["n"]
        elif entry["code"] in formats:
            invalid[field] += entry["n"]
    base = f"/api/v1/database/imports/{row['id']}"
    return Report(
        import_id=row["id"],
        table=row["target_table"],
        mode=row["mode"],
        status=row["status"],
        finished=row["finished_at"] is not None,
        total_records=row["total_rows"],
        valid_records=row["valid_rows"],
        loaded_records=row["loaded_rows"],
        updated_records=row["updated_rows"],
        skipped_records=row["skipped_rows"],
        failed_records=row["failed_rows"],
        duplicate_count=row["duplicate_rows"],
        warning_count=warnings,
        missing_required_fields=by_field(missing),
        invalid_format_fields=by_field(invalid),
        errors_by_code=dict(sorted(by_code.items())),
        error=row["error"],
        links={
            "import": base,
            "errors": f"{base}/errors",
            "errors_csv": f"{base}/errors?format=csv",
        },
    )


async def errors_csv(conn: Conn, import_id: uuid.UUID, severity: str | None, spool: Spool) -> None:
    """Every row error as CSV, into a spool to send once the connection is released;
    values that a spreadsheet would run as formulas are escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    async with conn.transaction():
        async for entry in import_store.row_errors_cursor(conn, import_id, severity):
            writer.writerow(
                ["" if entry[c] is None else escape_cell(str(entry[c])) for c in CSV_COLUMNS]
            )
            if buffer.tell() > 64 * 1024:
                spool.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
    spool.write(buffer.getvalue().encode())


def errors_csv_headers(import_id: uuid.UUID) -> dict[str, str]:
    return {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"',
    }
