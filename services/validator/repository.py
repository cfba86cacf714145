"""SQL of the validator: the import's key claims (duplicates across chunks) and batched
lookups of keys in target and referenced tables. Identifiers come from the catalog only;
values travel as text arrays and are cast with the column's own type, so PostgreSQL's
equality decides what matches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared.catalog import quote_ident
from shared.db import Conn

CLAIM_SQL = """
INSERT INTO tidegate.import_keys (import_id, key_no, digest, seq, line)
SELECT $1, u.key_no, u.digest, $5, u.line
FROM unnest($2::int2[], $3::bytea[], $4::int4[]) AS u(key_no, digest, line)
ON CONFLICT DO NOTHING
RETURNING key_no, digest
"""

# Owners of keys that were claimed before; one index probe each (never a scan of all the
# import's claims, which grow with the file).
OWNERS_SQL = """
SELECT u.key_no, u.digest, k.seq, k.line
FROM unnest($2::int2[], $3::bytea[]) AS u(key_no, digest)
CROSS JOIN LATERAL (
    SELECT seq, line FROM tidegate.import_keys k
    WHERE k.import_id = $1 AND k.key_no = u.key_no AND k.digest = u.digest
    OFFSET 0
) k
"""


async def claim_keys(
    conn: Conn,
    import_id: uuid.UUID,
    seq: int,
    claims: Sequence[tuple[int, bytes, int]],
) -> list[tuple[int, int, int, int]]:
    """Claim (key number, digest, line) for this chunk; returns (key number, line, owner
    seq, owner line) for each key an earlier claim already holds (possibly this very
    chunk's, when it is validated again)."""
    if not claims:
        return []
    key_nos, digests, lines = zip(*claims, strict=True)
    won = {
        (r["key_no"], bytes(r["digest"]))
        for r in await conn.fetch(
            CLAIM_SQL, import_id, list(key_nos), list(digests), list(lines), seq
        )
    }
    lost = {(k, d): line for k, d, line in claims if (k, d) not in won}
    if not lost:
        return []
    owners = await conn.fetch(OWNERS_SQL, import_id, [k for k, _ in lost], [d for _, d in lost])
    return [
        (r["key_no"], lost[(r["key_no"], bytes(r["digest"]))], r["seq"], r["line"]) for r in owners
    ]


async def claimed_digests(
    conn: Conn, import_id: uuid.UUID, key_no: int, digests: Sequence[bytes], up_to_seq: int
) -> set[bytes]:
    """Which of `digests` rows of this import claimed, in chunks up to `up_to_seq`."""
    rows = await conn.fetch(
        "SELECT digest FROM tidegate.import_keys WHERE import_id = $1 AND key_no = $2"
        " AND digest = ANY($3::bytea[]) AND seq <= $4",
        import_id,
        key_no,
        list(digests),
        up_to_seq,
    )
    return {bytes(r["digest"]) for r in rows}


def lookup_sql(table_sql: str, columns: Sequence[tuple[str, str]], *, present: bool) -> str:
    """Positions (1-based) of the input tuples that are (`present`) or are not in the
    table. `columns`: (column name in the table, type to cast the input to)."""
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    arrays = ", ".join(f"${i + 1}::text[]" for i in range(len(columns)))
    match = " AND ".join(
        f"t.{quote_ident(name)} = u.c{i}::{cast}" for i, (name, cast) in enumerate(columns)
    )
    exists = "EXISTS" if present else "NOT EXISTS"
    return (
        f"SELECT u.i FROM unnest({arrays}) WITH ORDINALITY AS u({aliases}, i)"
        f" WHERE {exists} (SELECT 1 FROM {table_sql} t WHERE {match})"
    )


async def lookup(conn: Conn, sql: str, tuples: Sequence[Sequence[str]]) -> list[int]:
    """0-based positions of `tuples` selected by a `lookup_sql` statement."""
    if not tuples:
        return []
    arrays = [list(values) for values in zip(*tuples, strict=True)]
    return [int(r["i"]) - 1 for r in await conn.fetch(sql, *arrays)]
