"""SQL of the loader: the chunk ledger and inserting rows with their lineage.

Rows are inserted with one statement per chunk: the columns travel as text arrays,
`unnest` turns them back into rows and PostgreSQL's own input functions convert them
(as COPY would). A data-modifying CTE records the primary keys of the inserted rows
(lineage, for undoing an import) in the same statement.
"""

from __future__ import annotations

import uuid

import asyncpg

from shared.catalog import TableDef, quote_ident
from shared.db import Conn


async def claim_chunk(conn: Conn, import_id: uuid.UUID, seq: int) -> bool:
    """True if this transaction is the first to load the chunk. A concurrent claimer
    waits here until the first commits, then sees the claim."""
    claimed = await conn.fetchval(
        "INSERT INTO tidegate.chunk_ledger (import_id, seq, loaded_rows, failed_rows)"
        " VALUES ($1, $2, 0, 0) ON CONFLICT DO NOTHING RETURNING true",
        import_id,
        seq,
    )
    return claimed is True


async def ledger_entry(conn: Conn, import_id: uuid.UUID, seq: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT loaded_rows, failed_rows, errors FROM tidegate.chunk_ledger"
        " WHERE import_id = $1 AND seq = $2",
        import_id,
        seq,
    )


async def record_outcome(
    conn: Conn,
    import_id: uuid.UUID,
    seq: int,
    loaded: int,
    failed: int,
    errors: bytes | None,
) -> None:
    await conn.execute(
        "UPDATE tidegate.chunk_ledger SET loaded_rows = $3, failed_rows = $4, errors = $5"
        " WHERE import_id = $1 AND seq = $2",
        import_id,
        seq,
        loaded,
        failed,
        errors,
    )


def insert_statement(table: TableDef, columns: tuple[str, ...]) -> str:
    """The insert-with-lineage statement for `columns` of `table` ($1..$n: column arrays;
    then import id, chunk seq, part number)."""
    n = len(columns)
    names = ", ".join(quote_ident(c) for c in columns)
    aliases = ", ".join(f"c{i}" for i in range(n))
    arrays = ", ".join(f"${i + 1}::text[]" for i in range(n))
    values = ", ".join(
        f"NULLIF(u.c{i}, '')::{table.column(c).cast_sql}" for i, c in enumerate(columns)
    )
    if table.primary_key:
        returning = ", ".join(quote_ident(c) for c in table.primary_key)
        keys = "jsonb_agg(jsonb_build_array(" + returning + "))"
    else:
        returning, keys = "1", "NULL::jsonb"
    return (
        f"WITH inserted AS (INSERT INTO {table.sql_name} ({names})"
        f" SELECT {values} FROM unnest({arrays}) AS u({aliases}) RETURNING {returning})"
        " INSERT INTO tidegate.load_lineage (import_id, seq, part, target_table, row_count, keys)"
        f" SELECT ${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}, count(*), {keys} FROM inserted"
        " RETURNING row_count"
    )


async def insert_rows(
    conn: Conn,
    statement: str,
    table: TableDef,
    rows: list[list[str]],
    import_id: uuid.UUID,
    seq: int,
    part: int,
) -> int:
    columns = [list(values) for values in zip(*rows, strict=True)]
    count = await conn.fetchval(statement, *columns, import_id, seq, part, table.qualified_name)
    return int(count)
