"""SQL of the loader: the chunk ledger and inserting rows with their lineage.

A chunk of new rows goes in with COPY (CSV, every cell quoted, every column FORCE_NULL, so an
empty cell is NULL as everywhere else), in the chunk's own transaction, with one lineage row:
the keys it inserted and the transaction's id. A row is unchanged since the import while its
`xmin` is that id (the concurrency token of Npgsql and EF Core), so no digest is computed.

Otherwise (the database refused the COPY, a duplicate policy, a dry run) rows are inserted
with one statement per chunk or part: the columns travel as text arrays (each
one array literal, `shared.db.text_array`),
`unnest` turns them back into rows and PostgreSQL's own input functions convert them
(as COPY would). Data-modifying CTEs record, in the same statement, the primary keys of
the inserted rows (lineage) and the previous state of updated rows, each with a digest of
the row as written (`DIGEST`): enough to undo an import, and to see which of its rows were
changed since.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import msgspec

from shared import ledger
from shared.catalog import TableDef, quote_ident
from shared.db import Conn, text_array
from shared.events import ChunkLoaded


class Admission(msgspec.Struct, frozen=True):
    """What the loader finds when it claims a chunk."""

    claimed: bool  # this transaction is the first to load the chunk
    finished: bool  # the import has finished
    verdict: bytes | None  # digest of the validator's verdict on the chunk
    payload: bytes | None  # the stored chunk (read only when claimed)


async def claim(conn: Conn, import_id: uuid.UUID, seq: int, *, rows: bool) -> Admission | None:
    """Claim the chunk in the ledger and read what admitting it needs, in one statement
    (the stored chunk only if `rows`: the verdict loads some); None for an unknown import.
    A concurrent claimer waits here until the first commits, then sees the claim. (The
    read's snapshot is taken before that wait: it is only used when this transaction
    claimed the chunk.)"""
    found = await claim_many(conn, import_id, [seq], rows=rows)
    return None if found is None else found[0]


async def claim_many(
    conn: Conn, import_id: uuid.UUID, seqs: Sequence[int], *, rows: bool = True
) -> list[Admission] | None:
    """`claim` of several chunks of one import, in one statement: their admissions in the
    order of `seqs`; None for an unknown import."""
    found = await conn.fetch(
        "WITH claim AS (INSERT INTO tidegate.chunk_ledger (import_id, seq, loaded_rows,"
        " failed_rows) SELECT $1, s, 0, 0 FROM unnest($2::integer[]) AS s"
        " ON CONFLICT DO NOTHING RETURNING seq)"
        " SELECT s.seq, s.seq IN (SELECT seq FROM claim) AS claimed,"
        " i.finished_at IS NOT NULL AS finished, v.digest,"
        " (SELECT c.payload FROM tidegate.chunks c WHERE c.import_id = i.id AND c.seq = s.seq"
        "  AND $3 AND s.seq IN (SELECT seq FROM claim)) AS payload"
        " FROM tidegate.imports i CROSS JOIN unnest($2::integer[]) WITH ORDINALITY AS s(seq, n)"
        " LEFT JOIN tidegate.chunk_verdicts v ON v.import_id = i.id AND v.seq = s.seq"
        " WHERE i.id = $1 ORDER BY s.n",
        import_id,
        list(seqs),
        rows,
    )
    if not found:
        return None
    return [Admission(r["claimed"], r["finished"], r["digest"], r["payload"]) for r in found]


async def ledger_entry(conn: Conn, import_id: uuid.UUID, seq: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {ledger.OUTCOME_COLUMNS} FROM tidegate.chunk_ledger"
        " WHERE import_id = $1 AND seq = $2",
        import_id,
        seq,
    )


async def import_settings(conn: Conn, import_id: uuid.UUID) -> asyncpg.Record | None:
    """What loading a chunk of the import needs first: its `auto_retry`, and the operation
    of the backup it asked for (None when it asked for none, or the backup is done)."""
    return await conn.fetchrow(
        "SELECT i.auto_retry, o.id AS backup_operation FROM tidegate.imports i"
        " LEFT JOIN tidegate.operations o ON o.backup_id = i.backup_id AND o.kind = 'backup'"
        "  AND o.status <> 'completed'"
        " WHERE i.id = $1",
        import_id,
    )


class Lineage(msgspec.Struct, frozen=True):
    """A lineage row to insert with a chunk's outcome: a SELECT whose parameters are
    numbered from OUTCOME_PARAMS + 1, and their values."""

    select: str
    args: tuple[object, ...]


OUTCOME_PARAMS = 9


async def record_outcome(conn: Conn, outcome: ChunkLoaded, lineage: Lineage | None = None) -> None:
    """The chunk's outcome in the ledger (and its lineage row, in the same statement)."""
    await record_outcomes(conn, [(outcome, lineage)])


async def record_outcomes(
    conn: Conn, outcomes: Sequence[tuple[ChunkLoaded, Lineage | None]]
) -> None:
    """`record_outcome` of several chunks (one round trip for those of one statement)."""
    by_statement: dict[str, list[tuple[object, ...]]] = {}
    for outcome, lineage in outcomes:
        insert = (
            "WITH lineage AS (INSERT INTO tidegate.load_lineage"
            f" (import_id, seq, part, target_table, row_count, keys, xid) {lineage.select}) "
            if lineage is not None
            else ""
        )
        by_statement.setdefault(
            f"{insert}UPDATE tidegate.chunk_ledger SET loaded_rows = $3, failed_rows = $4,"
            " updated_rows = $5, skipped_rows = $6, duplicate_rows = $7, errors = $8,"
            " chunk_error = $9 WHERE import_id = $1 AND seq = $2",
            [],
        ).append(
            (
                outcome.import_id,
                outcome.seq,
                outcome.loaded_rows,
                outcome.failed_rows,
                outcome.updated_rows,
                outcome.skipped_rows,
                outcome.duplicate_rows,
                msgspec.msgpack.encode(outcome.errors) if outcome.errors else None,
                outcome.chunk_error,
                *(lineage.args if lineage is not None else ()),
            )
        )
    for statement, args in by_statement.items():
        await conn.executemany(statement, args)


def _input(table: TableDef, columns: tuple[str, ...]) -> tuple[str, str]:
    """(column list, SELECT of the typed rows from the text arrays $1..$n)."""
    names = ", ".join(quote_ident(c) for c in columns)
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    arrays = ", ".join(f"${i + 1}::text::text[]" for i in range(len(columns)))
    values = ", ".join(
        f"NULLIF(u.c{i}, '')::{table.column(c).cast_sql} AS {quote_ident(c)}"
        for i, c in enumerate(columns)
    )
    return names, f"SELECT {values} FROM unnest({arrays}) AS u({aliases})"


# The digest of a target row `t` as it is now: written at load time, compared at rollback.
DIGEST = "hashtextextended(t::text, 0)"


def _lineage(table: TableDef, n: int, source: str) -> str:
    """INSERT of the lineage row for the primary keys (and digests) in CTE `source`."""
    if table.primary_key:
        keys = "jsonb_agg(jsonb_build_array(" + _pk(table) + ")), array_agg(digest)"
    else:
        keys = "NULL::jsonb, NULL::bigint[]"
    return (
        "INSERT INTO tidegate.load_lineage"
        " (import_id, seq, part, target_table, row_count, keys, digests)"
        f" SELECT ${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}, count(*), {keys} FROM {source}"
    )


def _pk(table: TableDef) -> str:
    return ", ".join(quote_ident(c) for c in table.primary_key)


def insert_statement(table: TableDef, columns: tuple[str, ...], *, skip_conflicts: bool) -> str:
    """Insert-with-lineage ($1..$n: column arrays; then import id, chunk seq, part number,
    table name). With `skip_conflicts`, rows that would violate a unique key are left out.
    Returns (loaded, updated)."""
    n = len(columns)
    names, select = _input(table, columns)
    returning = f"{_pk(table)}, {DIGEST} AS digest" if table.primary_key else "1"
    conflict = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    return (
        f"WITH inserted AS (INSERT INTO {table.sql_name} AS t ({names}) {select}{conflict}"
        f" RETURNING {returning}) {_lineage(table, n, 'inserted')}"
        " RETURNING row_count AS loaded, 0 AS updated"
    )


def upsert_statement(table: TableDef, columns: tuple[str, ...], match_on: tuple[str, ...]) -> str:
    """Insert, or update the row with the same `match_on` key. The rows as they were
    before are saved in `tidegate.row_images` (with the primary keys and digests of the rows
    as updated), the keys of inserted rows in the lineage.
    Returns (loaded, updated)."""
    n = len(columns)
    names, select = _input(table, columns)
    key = ", ".join(quote_ident(c) for c in match_on)
    setting = [c for c in columns if c not in match_on] or list(match_on[:1])
    updates = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in setting)
    returned = ", ".join(quote_ident(c) for c in dict.fromkeys(table.primary_key + match_on))
    same_key = " AND ".join(f"b.{quote_ident(c)} = u.{quote_ident(c)}" for c in match_on)
    if table.primary_key:
        after = (
            "jsonb_agg(jsonb_build_array("
            + ", ".join(f"u.{quote_ident(c)}" for c in table.primary_key)
            + ")), array_agg(u.digest)"
        )
    else:
        after = "NULL::jsonb, NULL::bigint[]"
    return (
        f"WITH input AS ({select}),"
        f" before AS (SELECT t.* FROM {table.sql_name} t WHERE ({key}) IN"
        f" (SELECT {key} FROM input)),"
        f" upserted AS (INSERT INTO {table.sql_name} AS t ({names}) SELECT * FROM input"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates} RETURNING {returned}, {DIGEST} AS digest),"
        f" inserted AS (SELECT * FROM upserted u WHERE NOT EXISTS"
        f" (SELECT 1 FROM before b WHERE {same_key})),"
        " images AS (INSERT INTO tidegate.row_images"
        " (import_id, seq, part, target_table, row_count, before, keys, digests)"
        f" SELECT ${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}, count(*), jsonb_agg(to_jsonb(b)),"
        f" {after} FROM before b JOIN upserted u ON {same_key} HAVING count(*) > 0),"
        f" lineage AS ({_lineage(table, n, 'inserted')})"
        " SELECT (SELECT count(*) FROM upserted) AS loaded,"
        " (SELECT count(*) FROM before) AS updated"
    )


async def copy_rows(
    conn: Conn, table: TableDef, columns: tuple[str, ...], rows: Sequence[Sequence[str]]
) -> None:
    """COPY the rows into the table. Raises what the database refuses (the transaction is
    then unusable: it must not be a savepoint's, whose rows carry the subtransaction's id)."""
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    data = out.getvalue().encode()

    async def source() -> AsyncIterator[bytes]:  # a file would be read in a thread
        yield data

    await conn.copy_to_table(
        table.name,
        schema_name=table.schema,
        columns=list(columns),
        source=source(),
        format="csv",
        force_null=list(columns),
    )


def copy_lineage(
    table: TableDef,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[str]],
    import_id: uuid.UUID,
    seq: int,
) -> Lineage:
    """The lineage row of a chunk's rows copied in this transaction (their keys and the
    transaction's id), for `record_outcome`."""
    first = OUTCOME_PARAMS + 1
    if table.primary_key:
        places = [columns.index(c) for c in table.primary_key]
        arrays = [text_array([row[p] for row in rows]) for p in places]
        casts = [table.column(c).cast_sql for c in table.primary_key]
        unnest = ", ".join(f"${first + 4 + i}::text::text[]" for i in range(len(places)))
        names = ", ".join(f"c{i}" for i in range(len(places)))
        typed = ", ".join(f"NULLIF(u.c{i}, '')::{cast}" for i, cast in enumerate(casts))
        keys = f"(SELECT jsonb_agg(jsonb_build_array({typed})) FROM unnest({unnest}) AS u({names}))"
    else:
        arrays, keys = [], "NULL::jsonb"
    select = (
        f"SELECT ${first}::uuid, ${first + 1}::integer, 0, ${first + 2}::text,"
        f" ${first + 3}::integer, {keys}, pg_current_xact_id()"
    )
    return Lineage(select, (import_id, seq, table.qualified_name, len(rows), *arrays))


async def insert_rows(
    conn: Conn,
    statement: str,
    table: TableDef,
    rows: list[list[str]],
    import_id: uuid.UUID,
    seq: int,
    part: int,
) -> tuple[int, int]:
    """(rows loaded, of which updated)."""
    columns = [text_array(values) for values in zip(*rows, strict=True)]
    row = await conn.fetchrow(statement, *columns, import_id, seq, part, table.qualified_name)
    assert row is not None
    return int(row["loaded"]), int(row["updated"])
