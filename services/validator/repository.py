"""SQL of the validator: the record of an import's key claims (duplicates across chunks) and
batched lookups of keys in target and referenced tables. Identifiers come from the catalog only;
values travel as text arrays and are cast with the column's own type, so PostgreSQL's
equality decides what matches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.catalog import quote_ident
from shared.db import Conn, text_array
from shared.events import ChunkValidated, digest

Packed = npt.NDArray[np.int64]


async def claimed_chunks(conn: Conn, import_id: uuid.UUID) -> list[tuple[int, int, Packed, Packed]]:
    """(seq, key number, digests, lines) of each chunk's recorded claims, in order."""
    rows = await conn.fetch(
        "SELECT seq, key_no, digests, lines FROM tidegate.import_key_chunks"
        " WHERE import_id = $1 ORDER BY seq, key_no",
        import_id,
    )
    return [
        (
            r["seq"],
            r["key_no"],
            np.frombuffer(r["digests"], ">i8").astype(np.int64),
            np.frombuffer(r["lines"], ">i4").astype(np.int64),
        )
        for r in rows
    ]


async def record_claims(
    conn: Conn,
    import_id: uuid.UUID,
    chunks: Sequence[tuple[int, dict[int, tuple[Packed, Packed]]]],
) -> None:
    """One row per key of each chunk (seq, claims): the key values it was first to use,
    and their lines (packed big-endian, 8 and 4 bytes each)."""
    rows = [
        (import_id, seq, key_no, d.astype(">i8").tobytes(), lines.astype(">i4").tobytes())
        for seq, claims in chunks
        for key_no, (d, lines) in claims.items()
    ]
    if rows:
        await conn.executemany(
            "INSERT INTO tidegate.import_key_chunks (import_id, seq, key_no, digests, lines)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            rows,
        )


async def record_verdicts(conn: Conn, verdicts: Sequence[ChunkValidated]) -> None:
    """The digest and counts of each chunk.validated event about to be published (the last
    one wins: a chunk validated again after the table changed supersedes its earlier
    verdict). The loader loads, and the auditor counts, only the event recorded here."""
    await conn.executemany(
        "INSERT INTO tidegate.chunk_verdicts (import_id, seq, digest, total_rows,"
        " invalid_rows, skipped_rows, duplicate_rows, error_count, chunk_error)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (import_id, seq) DO UPDATE SET digest = EXCLUDED.digest,"
        " total_rows = EXCLUDED.total_rows, invalid_rows = EXCLUDED.invalid_rows,"
        " skipped_rows = EXCLUDED.skipped_rows, duplicate_rows = EXCLUDED.duplicate_rows,"
        " error_count = EXCLUDED.error_count, chunk_error = EXCLUDED.chunk_error,"
        " validated_at = now() WHERE chunk_verdicts.digest <> EXCLUDED.digest",
        [
            (
                v.import_id,
                v.seq,
                digest(v),
                v.total_rows,
                v.invalid_rows,
                v.skipped_rows,
                v.duplicate_rows,
                len(v.errors),
                v.chunk_error,
            )
            for v in verdicts
        ],
    )


def _match(columns: Sequence[tuple[str, str]], *, fold: bool, first: int = 0) -> str:
    """`t.column = u.cN::type` for each column (`lower()` of both sides when `fold`)."""
    sides = [
        (f"t.{quote_ident(name)}", f"u.c{first + i}::{cast}")
        for i, (name, cast) in enumerate(columns)
    ]
    if fold:
        sides = [(f"lower({a})", f"lower({b})") for a, b in sides]
    return " AND ".join(f"{a} = {b}" for a, b in sides)


def _source(n: int) -> str:
    """The input tuples: `n` text arrays as columns c0…, with their 1-based position i."""
    aliases = ", ".join(f"c{i}" for i in range(n))
    arrays = ", ".join(f"${i + 1}::text::text[]" for i in range(n))
    return f"unnest({arrays}) WITH ORDINALITY AS u({aliases}, i)"


def lookup_sql(table_sql: str, columns: Sequence[tuple[str, str]], *, present: bool) -> str:
    """Positions (1-based) of the input tuples that are (`present`) or are not in the
    table. `columns`: (column name in the table, type to cast the input to). One probe
    per tuple (a lateral subquery with LIMIT 1) on the table's index, never a scan of the
    whole table."""
    match = _match(columns, fold=False)
    probe = f"LATERAL (SELECT true AS found FROM {table_sql} t WHERE {match} LIMIT 1) AS hit"
    source = _source(len(columns))
    if present:
        return f"SELECT u.i FROM {source} CROSS JOIN {probe}"
    return f"SELECT u.i FROM {source} LEFT JOIN {probe} ON true WHERE hit.found IS NULL"


def declared_key_sql(
    table_sql: str,
    columns: Sequence[tuple[str, str]],
    *,
    fold: bool,
    other_than: Sequence[tuple[str, str]] = (),
) -> str:
    """Positions (1-based) of the input tuples that a row of the table already has, for a
    key only a rule file declares (so likely without an index: one semi-join per chunk,
    not a probe per tuple). With `other_than` (more arrays follow the key's), a row whose
    `other_than` columns equal the tuple's does not count: the row an update will change."""
    match = _match(columns, fold=fold)
    if other_than:
        theirs = ", ".join(f"t.{quote_ident(name)}" for name, _ in other_than)
        ours = ", ".join(f"u.c{len(columns) + i}::{cast}" for i, (_, cast) in enumerate(other_than))
        match += f" AND ({theirs}) IS DISTINCT FROM ({ours})"
    source = _source(len(columns) + len(other_than))
    return f"SELECT u.i FROM {source} WHERE EXISTS (SELECT 1 FROM {table_sql} t WHERE {match})"


def loaded_by_import_sql(
    table_sql: str,
    columns: Sequence[tuple[str, str]],
    primary_key: Sequence[str],
    *,
    fold: bool = False,
) -> str:
    """Positions (1-based) of the input tuples whose row in the table this import itself
    inserted (its primary key is in the import's lineage; the import id follows the
    arrays): such a row is the chunk's own, loaded before it was validated again."""
    n = len(columns)
    pk = ", ".join(f"t.{quote_ident(c)}" for c in primary_key)
    return (
        f"SELECT u.i FROM {_source(n)}"
        f" CROSS JOIN LATERAL (SELECT jsonb_build_array(jsonb_build_array({pk})) AS pk"
        f" FROM {table_sql} t WHERE {_match(columns, fold=fold)} LIMIT 1) AS hit"
        f" WHERE EXISTS (SELECT 1 FROM tidegate.load_lineage l"
        f" WHERE l.import_id = ${n + 1} AND l.keys @> hit.pk)"
    )


async def lookup(
    conn: Conn, sql: str, tuples: Sequence[Sequence[str]], *params: object
) -> list[int]:
    """0-based positions of `tuples` selected by a `lookup_sql` statement (`params`
    follow the arrays)."""
    return await lookup_columns(conn, sql, [list(c) for c in zip(*tuples, strict=True)], *params)


async def lookup_columns(
    conn: Conn, sql: str, columns: Sequence[Sequence[str]], *params: object
) -> list[int]:
    """`lookup` of tuples given column by column (each column a list of the values)."""
    if not columns or not columns[0]:
        return []
    arrays = [text_array(values) for values in columns]
    return [int(r["i"]) - 1 for r in await conn.fetch(sql, *arrays, *params)]
