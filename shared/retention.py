"""What tidegate keeps of a finished import, and for how long (docs/architecture.md,
"Retention"). Three kinds of record, each with its own setting in days (0: for ever),
counted from the moment the import finished; nothing of an unfinished import is touched:

- `chunks` (TIDEGATE_CHUNK_RETENTION_DAYS, 7): its chunk store (a full copy of the file)
  and its published events in the outbox. After: its failed
  rows can no longer be downloaded or retried without a file (410).
- `lineage` (TIDEGATE_LINEAGE_RETENTION_DAYS, 30): which rows it wrote and their images
  before it (`load_lineage`, `row_images`). After: it can no longer be rolled back (409
  lineage-expired), a record's history no longer lists it, and its pre-import backup
  falls under the ordinary backup retention.
- `diagnostics` (TIDEGATE_DIAGNOSTICS_RETENTION_DAYS, 90): its row errors, journal
  (timeline), per-chunk progress, verdicts, ledger and retry lines; and verifications
  finished that long ago. After: its counts and status remain; the lists are empty.

The import's own row (status, counts, who, when) is kept. `sweep` works in batches of
imports, each in its own transaction, and stops after `budget_seconds`, so one pass takes
bounded time whatever the backlog; the next pass goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Literal

import msgspec

from shared import topics
from shared.config import Settings
from shared.db import Conn, affected

Kind = Literal["chunks", "lineage", "diagnostics"]

# The tables each kind forgets, all keyed by import_id.
TABLES: dict[Kind, tuple[str, ...]] = {
    "chunks": ("chunks", "outbox"),
    "lineage": ("load_lineage", "row_images"),
    "diagnostics": (
        "row_errors",
        "retried_lines",
        "chunk_progress",
        "chunk_verdicts",
        "chunk_ledger",
        "import_journal",
        "import_key_chunks",
    ),
}
BATCH_IMPORTS = 20
BATCH_ROWS = 5000


class Retention(msgspec.Struct, frozen=True):
    """Days each kind is kept after its import finished (0: for ever)."""

    chunks: int
    lineage: int
    diagnostics: int

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        return cls(
            chunks=settings.chunk_retention_days,
            lineage=settings.lineage_retention_days,
            diagnostics=settings.diagnostics_retention_days,
        )

    def days(self, kind: Kind) -> int:
        return int(getattr(self, kind))


async def forget(conn: Conn, kind: Kind, import_ids: list[object]) -> Counter[str]:
    """Delete `kind` of these imports and mark it forgotten. Call inside a transaction."""
    gone: Counter[str] = Counter()
    for table in TABLES[kind]:
        published = " AND published_at IS NOT NULL" if table == "outbox" else ""
        gone[table] += await affected(
            conn,
            f"DELETE FROM tidegate.{table} WHERE import_id = ANY($1::uuid[]){published}",  # noqa: S608
            import_ids,
        )
    await conn.execute(
        f"UPDATE tidegate.imports SET {kind}_purged_at = now() WHERE id = ANY($1::uuid[])",  # noqa: S608
        import_ids,
    )
    return gone


async def sweep(conn: Conn, policy: Retention, budget_seconds: float = 10.0) -> Counter[str]:
    """One pass: forget what has expired, batch after batch, for at most `budget_seconds`;
    returns how many rows of each table went."""
    deadline = time.monotonic() + budget_seconds
    gone: Counter[str] = Counter()
    for kind in TABLES:
        days = policy.days(kind)
        while days and time.monotonic() < deadline:
            async with conn.transaction():
                ids = [
                    r["id"]
                    for r in await conn.fetch(
                        "SELECT id FROM tidegate.imports WHERE finished_at IS NOT NULL"  # noqa: S608
                        f" AND {kind}_purged_at IS NULL"
                        " AND finished_at < now() - make_interval(days => $1)"
                        " ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                        days,
                        BATCH_IMPORTS,
                    )
                ]
                if not ids:
                    break
                gone += await forget(conn, kind, ids)
                gone["imports"] += len(ids)
    if policy.chunks and time.monotonic() < deadline:
        gone["outbox"] += await affected(
            conn,
            "DELETE FROM tidegate.outbox WHERE id IN (SELECT b.id FROM tidegate.outbox b"
            " JOIN tidegate.operations o ON b.event_id = 'operation:' || o.id || ':requested'"
            " WHERE b.topic = $1 AND o.finished_at < now() - make_interval(days => $2)"
            " LIMIT $3)",
            topics.OPERATIONS,
            policy.chunks,
            BATCH_ROWS,
        )
    if policy.diagnostics and time.monotonic() < deadline:
        gone["verifications"] += await affected(
            conn,
            "DELETE FROM tidegate.verifications WHERE id IN (SELECT id FROM"
            " tidegate.verifications WHERE finished_at < now() - make_interval(days => $1)"
            " LIMIT $2)",
            policy.diagnostics,
            BATCH_ROWS,
        )
    return gone
