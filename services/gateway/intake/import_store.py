"""SQL of the gateway: recording imports with their chunks (outbox) and reading status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.cursor import CursorFactory

from shared.db import Conn

if TYPE_CHECKING:
    from services.gateway.intake.options import ImportOptions, Owner
    from shared.api_keys import Principal
    from shared.text_encoding import Decision

IMPORT_COLUMNS = """
id, target_table, columns, chunk_size, source, filename, status, version, mode, on_duplicate,
encoding, encoding_decided_by, encoding_confidence, delimiter, file_rows, total_rows,
valid_rows, loaded_rows, failed_rows,
skipped_rows, updated_rows, duplicate_rows, chunks_total, chunks_validated, chunks_loaded,
error, created_at, updated_at, finished_at, key_id, team, producer, redrives, last_redrive_at,
header, parent_id, auto_retry, rollback_on_failure, atomic, backup_id, chunks_failed,
ignored_columns, empty_rows, chunks_purged_at, lineage_purged_at,
(SELECT jsonb_build_object('chunks', count(*), 'rows',
        coalesce(sum(l.loaded_rows + l.failed_rows + l.skipped_rows), 0), 'at', max(l.loaded_at))
   FROM tidegate.chunk_ledger l WHERE l.import_id = imports.id) AS checkpoint,
(SELECT jsonb_build_object('operation', o.id, 'status', o.status, 'trigger', o.trigger,
        'error', o.error)
   FROM tidegate.operations o WHERE o.import_id = imports.id AND o.kind = 'rollback'
    AND NOT o.dry_run ORDER BY o.created_at DESC LIMIT 1) AS rollback
"""


# Which imports a key sees: admins all, others their key's and their team's.
def visible(first: int, *, tables: str = "ARRAY[target_table]", of: str = "") -> str:
    """The condition that a row (of alias `of`) is visible to the key whose `visibility`
    is passed as parameters $first to $first + 2: an admin sees every row, another key its
    own and its team's; a key limited to tables sees only rows whose `tables` all are
    among them."""
    k, t, s = first, first + 1, first + 2
    return (
        f"(${k}::uuid IS NULL OR {of}key_id = ${k} OR {of}team = ${t})"
        f" AND (${s}::text[] IS NULL OR {tables} <@ ${s}::text[])"
    )


def visibility(viewer: Principal) -> tuple[uuid.UUID | None, str | None, list[str] | None]:
    """(key id, team, tables) to filter on: (None, None, …) for an admin, who sees every
    key's; tables None for a key not limited to some."""
    tables = None if viewer.tables is None else list(viewer.tables)
    if viewer.may("admin"):
        return None, None, tables
    return viewer.id, viewer.team, tables


async def insert_import(
    conn: Conn,
    *,
    import_id: uuid.UUID,
    table: str,
    columns: tuple[str, ...],
    options: ImportOptions,
    encoding: Decision,
    delimiter: str,
    filename: str | None,
    owner: Owner,
    file_rows: int,
    chunks_total: int,
    header: list[str],
    ignored_columns: list[str],
    empty_rows: int,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source, filename,"
        " file_rows, chunks_total, mode, on_duplicate, encoding, delimiter, key_id, team, slot,"
        " header, parent_id, auto_retry, rollback_on_failure, atomic, ignored_columns,"
        " empty_rows, encoding_decided_by, encoding_confidence) VALUES ($1, $2, $3, $4, 'http',"
        " $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,"
        f" $23) RETURNING {IMPORT_COLUMNS}",
        import_id,
        table,
        list(columns),
        options.chunk_size,
        filename,
        file_rows,
        chunks_total,
        options.mode,
        options.on_duplicate,
        encoding.encoding.name,
        delimiter,
        owner.key_id,
        owner.team,
        owner.slot,
        header,
        options.parent_id,
        options.auto_retry,
        options.rollback_on_failure,
        options.atomic,
        ignored_columns,
        empty_rows,
        encoding.decided_by,
        encoding.confidence,
    )
    assert row is not None
    return row


async def set_backup(conn: Conn, import_id: uuid.UUID, backup_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"UPDATE tidegate.imports SET backup_id = $2 WHERE id = $1 RETURNING {IMPORT_COLUMNS}",
        import_id,
        backup_id,
    )
    assert row is not None
    return row


async def get_import(conn: Conn, import_id: uuid.UUID, viewer: Principal) -> asyncpg.Record | None:
    """The import, if `viewer` may see it (to anyone else it does not exist)."""
    return await conn.fetchrow(
        f"SELECT {IMPORT_COLUMNS} FROM tidegate.imports WHERE id = $1 AND {visible(2)}",
        import_id,
        *visibility(viewer),
    )


async def list_imports(
    conn: Conn, viewer: Principal, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    """The imports `viewer` may see, newest first, keyset-paginated on (created_at, id)."""
    return await conn.fetch(
        f"SELECT {IMPORT_COLUMNS} FROM tidegate.imports WHERE {visible(1)}"
        " AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        *visibility(viewer),
        limit,
        *(after or (None, None)),
    )


ROW_ERROR_ORDER = "ORDER BY line, column_name NULLS FIRST, code"
ROW_ERROR_COLUMNS = "line, column_name AS column, severity, code, message, value, stage"


async def list_row_errors(
    conn: Conn, import_id: uuid.UUID, *, limit: int, offset: int, severity: str | None
) -> tuple[int, list[dict[str, Any]]]:
    total = await conn.fetchval(
        "SELECT count(*) FROM tidegate.row_errors WHERE import_id = $1"
        " AND ($2::text IS NULL OR severity = $2)",
        import_id,
        severity,
    )
    rows = await conn.fetch(
        f"SELECT {ROW_ERROR_COLUMNS} FROM tidegate.row_errors WHERE import_id = $1"
        f" AND ($4::text IS NULL OR severity = $4) {ROW_ERROR_ORDER} LIMIT $2 OFFSET $3",
        import_id,
        limit,
        offset,
        severity,
    )
    return int(total), [dict(r) for r in rows]


def row_errors_cursor(
    conn: Conn, import_id: uuid.UUID, severity: str | None
) -> CursorFactory[asyncpg.Record]:
    """Every row error of an import, streamed (use inside a transaction)."""
    return conn.cursor(
        f"SELECT {ROW_ERROR_COLUMNS} FROM tidegate.row_errors WHERE import_id = $1"
        f" AND ($2::text IS NULL OR severity = $2) {ROW_ERROR_ORDER}",
        import_id,
        severity,
    )


async def error_counts(conn: Conn, import_id: uuid.UUID) -> list[asyncpg.Record]:
    """(column, code, severity, count) of an import's row errors."""
    return await conn.fetch(
        "SELECT column_name, code, severity, count(*) AS n FROM tidegate.row_errors"
        " WHERE import_id = $1 GROUP BY 1, 2, 3 ORDER BY 1 NULLS FIRST, 2, 3",
        import_id,
    )


# The first half of the advisory lock on an outbox key (the second: the key's hash).
OUTBOX_KEY_LOCK = 0x6F75_7462


async def claim_unpublished(conn: Conn, limit: int) -> list[asyncpg.Record]:
    """A batch of unpublished events, oldest first, of keys (imports) no other relay holds:
    each key is held with a transaction-level advisory lock, so one relay at a time
    publishes a key's events, in the order they were stored. Call inside a transaction."""
    keys = await conn.fetch(
        "SELECT key FROM tidegate.outbox WHERE published_at IS NULL"
        " GROUP BY key ORDER BY min(id) LIMIT $1",
        limit,
    )
    held = [
        row["key"]
        for row in keys
        if await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", OUTBOX_KEY_LOCK, row["key"]
        )
    ]
    if not held:
        return []
    return await conn.fetch(
        "SELECT id, event_id, event_type, topic, key, payload, created_at FROM tidegate.outbox"
        " WHERE published_at IS NULL AND key = ANY($1::text[]) ORDER BY id LIMIT $2"
        " FOR UPDATE",
        held,
        limit,
    )


async def mark_published(conn: Conn, ids: list[int]) -> None:
    await conn.execute(
        "UPDATE tidegate.outbox SET published_at = now() WHERE id = ANY($1::bigint[])", ids
    )


async def count_unpublished(conn: Conn) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM tidegate.outbox WHERE published_at IS NULL")
    )


async def changed_imports(
    conn: Conn,
    *,
    after_xid: int | None = None,
    since: datetime | None = None,
    viewer: Principal | None = None,
    import_id: uuid.UUID | None = None,
    limit: int = 2000,
) -> tuple[int, list[asyncpg.Record]]:
    """(cursor, imports changed by a transaction at or after `after_xid`, or at or after
    `since`), oldest change first, with each row's `changed_xid`; only those `viewer` may
    see when given. The cursor is the oldest transaction still running in this statement's
    snapshot: anything committed later was changed at or after it. All in one snapshot."""
    found = await conn.fetch(
        "WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS cursor)"
        " SELECT snap.cursor, c.* FROM snap LEFT JOIN LATERAL ("
        f" SELECT {IMPORT_COLUMNS}, changed_xid::text::bigint AS change"
        " FROM tidegate.imports"
        " WHERE (changed_xid >= $1::text::xid8 OR updated_at >= $2)"
        f" AND ($3::boolean OR {visible(4)})"
        " AND ($7::uuid IS NULL OR id = $7) ORDER BY changed_xid, id LIMIT $8) c ON true",
        None if after_xid is None else str(after_xid),
        since,
        viewer is None,
        *(visibility(viewer) if viewer is not None else (None, None, None)),
        import_id,
        limit,
    )
    return int(found[0]["cursor"]), [r for r in found if r["id"] is not None]
