"""`POST /api/v1/purges` (admin; `tidegate purge`): for a deletion request, remove a table's
rows, or one row's (by primary key), from every copy tidegate keeps of them, for every
finished import into the table:

- the chunk store (the rows as uploaded): the whole chunks, or the row's lines cut out of
  them;
- the lineage and the row images (what each import wrote, and the rows before it);
- the row errors (with the values quoted in them), and for a whole table the timeline and
  the per-chunk records;
- verifications of the table whose results name the row (all of them, for a table).

Backups are files that cannot be edited: those holding the table are listed, and deleted
(by the loader, as delete-backup operations) when `backups` is true. An import into the
table still running refuses the purge (409): its rows are in flight. The audit log records
the table, the key's columns and the counts, never the key's values. Each import is purged
in a transaction of its own, so a purge stopped halfway is completed by running it again.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from services.gateway.access.guard import AUDIT_DETAIL, TARGET, principal_of
from services.gateway.imports.resources import API, respond
from services.gateway.intake.relay import RELAY
from services.gateway.problems import Problem
from services.gateway.recovery.backups import backup_url
from services.gateway.recovery.rollbacks import operation_url
from services.gateway.tables.lookup import TABLES
from shared import chunk_store, operations, retention
from shared.catalog import TableDef, split_table_name
from shared.db import Conn, affected
from shared.events import encode
from shared.service import POOL

routes = web.RouteTableDef()


class PurgeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    table: str
    key: dict[str, str] | None = None  # primary-key column → value; None: the whole table
    backups: bool = False  # also delete the backups holding the table


class Purged(msgspec.Struct, frozen=True):
    table: str
    key_columns: list[str] | None
    imports: int  # finished imports into the table whose copies were purged
    removed: dict[str, int]  # rows (or for the chunk store, chunk rows) removed, per store
    backups_deleting: list[str]  # operations deleting the backups that held the table
    backups_holding: list[str]  # backups that still hold it (backups=false)


def _invalid(detail: str) -> Problem:
    return Problem(422, "invalid-body", "Invalid request body", detail)


async def _typed_key(conn: Conn, table: TableDef, key: dict[str, str]) -> Any:
    """The key as the lineage stores it: a JSON array of the typed primary-key values."""
    if sorted(key) != sorted(table.primary_key):
        raise _invalid(
            f"key must name the primary key of {table.qualified_name}:"
            f" {', '.join(table.primary_key) or '(none)'}."
        )
    casts = ", ".join(
        f"${i + 1}::text::{table.column(c).cast_sql}" for i, c in enumerate(table.primary_key)
    )
    try:
        return await conn.fetchval(
            f"SELECT jsonb_build_array({casts})", *(key[c] for c in table.primary_key)
        )
    except asyncpg.DataError as exc:  # a value the column's type refuses
        raise _invalid(f"the key does not fit the columns' types: {exc}") from None


def _same_cell(cell: str, value: str) -> bool:
    cell = cell.strip()
    if cell == value:
        return True
    try:
        return int(cell) == int(value)
    except ValueError:
        return False


async def _cut_chunks(
    conn: Conn, import_id: uuid.UUID, key: dict[str, str]
) -> tuple[int, list[int]]:
    """Remove the key's rows from the import's chunk copies: (rows removed, their lines)."""
    removed, lines = 0, []
    for stored in await conn.fetch(
        "SELECT seq, payload FROM tidegate.chunks WHERE import_id = $1", import_id
    ):
        chunk = chunk_store.decode(stored["payload"])
        where = {c: chunk.columns.index(c) for c in key if c in chunk.columns}
        if len(where) != len(key):
            continue
        kept_rows, kept_lines = [], []
        for row, line in zip(chunk.rows, chunk.line_numbers(), strict=False):
            if all(i < len(row) and _same_cell(row[i], key[c]) for c, i in where.items()):
                removed += 1
                lines.append(line)
            else:
                kept_rows.append(row)
                kept_lines.append(line)
        if len(kept_rows) != len(chunk.rows):
            cut = msgspec.structs.replace(chunk, rows=kept_rows, lines=kept_lines)
            await conn.execute(
                "UPDATE tidegate.chunks SET payload = $3, row_count = $4"
                " WHERE import_id = $1 AND seq = $2",
                import_id,
                stored["seq"],
                encode(cut),
                len(kept_rows),
            )
    return removed, lines


async def _cut_lineage(conn: Conn, table: str, typed: Any) -> Counter[str]:
    """Remove the key from the lineage and the row images of every import into `table`."""
    gone: Counter[str] = Counter()
    key = msgspec.json.decode(typed)
    for store, aligned in (("load_lineage", ()), ("row_images", ("before",))):
        rows = await conn.fetch(
            f"SELECT import_id, seq, part, keys, digests{''.join(', ' + a for a in aligned)}"  # noqa: S608
            f" FROM tidegate.{store} WHERE target_table = $1"
            " AND keys @> jsonb_build_array($2::jsonb)",
            table,
            typed,
        )
        for row in rows:
            keys = msgspec.json.decode(row["keys"])
            keep = [i for i, k in enumerate(keys) if k != key]
            gone[store] += len(keys) - len(keep)
            where = (row["import_id"], row["seq"], row["part"])
            if not keep:
                await conn.execute(
                    f"DELETE FROM tidegate.{store}"  # noqa: S608
                    " WHERE import_id = $1 AND seq = $2 AND part = $3",
                    *where,
                )
                continue
            values = [
                msgspec.json.encode([keys[i] for i in keep]).decode(),
                [row["digests"][i] for i in keep] if row["digests"] else None,
                len(keep),
            ]
            sets = "keys = $4::jsonb, digests = $5, row_count = $6"
            if aligned:
                before = msgspec.json.decode(row["before"])
                values.append(msgspec.json.encode([before[i] for i in keep]).decode())
                sets += ", before = $7::jsonb"
            await conn.execute(
                f"UPDATE tidegate.{store} SET {sets}"  # noqa: S608
                " WHERE import_id = $1 AND seq = $2 AND part = $3",
                *where,
                *values,
            )
    return gone


async def _purge(
    conn: Conn, table: str, found: TableDef | None, key: dict[str, str] | None
) -> tuple[int, Counter[str]]:
    running = await conn.fetchval(
        "SELECT count(*) FROM tidegate.imports WHERE target_table = $1 AND finished_at IS NULL",
        table,
    )
    if running:
        raise Problem(
            409,
            "import-running",
            "Import still running",
            f"{running} import(s) into {table} have not finished; purge once they have.",
        )
    ids = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM tidegate.imports WHERE target_table = $1 ORDER BY created_at", table
        )
    ]
    gone: Counter[str] = Counter()
    if key is None:
        for import_id in ids:
            async with conn.transaction():
                for kind in retention.TABLES:
                    gone += await retention.forget(conn, kind, [import_id])
        gone["verifications"] += await affected(
            conn, "DELETE FROM tidegate.verifications WHERE tables @> ARRAY[$1::text]", table
        )
        return len(ids), gone
    assert found is not None
    typed = await _typed_key(conn, found, key)
    async with conn.transaction():
        gone += await _cut_lineage(conn, table, typed)
    for import_id in ids:
        async with conn.transaction():
            removed, lines = await _cut_chunks(conn, import_id, key)
            gone["chunks"] += removed
            if lines:
                gone["row_errors"] += await affected(
                    conn,
                    "DELETE FROM tidegate.row_errors WHERE import_id = $1 AND line = ANY($2)",
                    import_id,
                    lines,
                )
    gone["verifications"] += await affected(
        conn,
        "DELETE FROM tidegate.verifications WHERE tables @> ARRAY[$1::text]"
        " AND (SELECT bool_and(strpos(result::text, v) > 0) FROM unnest($2::text[]) AS v)",
        table,
        list(key.values()),
    )
    return len(ids), gone


@routes.post(f"{API}/purges", name="purges.create")
async def purge(request: web.Request) -> web.Response:
    """Remove a table's rows, or one row's, from every copy tidegate keeps."""
    try:
        body = msgspec.json.decode(await request.read(), type=PurgeRequest)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed-body", "Malformed request body", str(exc)) from None
    parts = split_table_name(body.table, "public")
    if parts is None:
        raise _invalid(f"{body.table!r} is not a table name.")
    table = ".".join(parts)
    request[TARGET] = table
    who = principal_of(request)
    async with request.app[POOL].acquire() as conn:
        found = await request.app[TABLES].get(conn, table)
        if body.key is not None and found is None:
            raise Problem(404, "unknown-table", "Unknown table", f"{table} does not exist.")
        imports, gone = await _purge(conn, table, found, body.key)
        holding = await conn.fetch(
            "SELECT id FROM tidegate.backups WHERE tables @> ARRAY[$1::text]"
            " AND status IN ('pending', 'completed') ORDER BY created_at",
            table,
        )
        deleting = []
        if body.backups:
            for backup in holding:
                async with conn.transaction():
                    op = await operations.request(
                        conn,
                        kind="delete_backup",
                        trigger="request",
                        backup_id=backup["id"],
                        key_id=who.id,
                        team=who.team,
                    )
                deleting.append(operation_url(op["id"]))
            request.app[RELAY].wake()
    key_columns = sorted(body.key) if body.key is not None else None
    request[AUDIT_DETAIL].update(
        table=table, key_columns=key_columns, imports=imports, removed=dict(gone)
    )
    return respond(
        Purged(
            table=table,
            key_columns=key_columns,
            imports=imports,
            removed=dict(gone),
            backups_deleting=deleting,
            backups_holding=[] if body.backups else [backup_url(b["id"]) for b in holding],
        )
    )
