"""A table's content as two numbers: its row count and an order-independent hash of its
rows (the sum of each row's 64-bit hash of its text). Backups record it; a restore checks
that the table has it again before it commits."""

from __future__ import annotations

from shared.catalog import quote_ident
from shared.db import Conn


def fingerprint_sql(qualified_name: str) -> str:
    """SELECT (rows bigint, hash text) of the table `schema.table`."""
    schema, name = qualified_name.split(".", 1)
    return (
        "SELECT count(*) AS rows, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text"
        f" AS hash FROM {quote_ident(schema)}.{quote_ident(name)} t"
    )


async def fingerprint(conn: Conn, qualified_name: str) -> tuple[int, str]:
    row = await conn.fetchrow(fingerprint_sql(qualified_name))
    assert row is not None
    return int(row["rows"]), str(row["hash"])


def check_sql(qualified_name: str, rows: int, digest: str) -> str:
    """A statement that raises unless the table has this fingerprint (for a restore's
    transaction). The values are ours: an integer and a decimal string, quoted."""
    quoted = digest.replace("'", "''")
    expected = f"({int(rows)}::bigint, '{quoted}'::text)"
    message = f"restored {qualified_name} differs from the backup".replace("'", "''")
    return (
        "DO $check$ BEGIN IF (SELECT (f.rows, f.hash) FROM ("
        f"{fingerprint_sql(qualified_name)}) f) IS DISTINCT FROM {expected}"
        f" THEN RAISE EXCEPTION '{message}'; END IF; END $check$;"
    )
