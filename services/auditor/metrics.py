"""Auditor metrics: imports by outcome and their duration."""

from prometheus_client import Counter, Gauge, Histogram

IMPORTS_FINISHED = Counter(
    "tidegate_imports_finished_total", "Imports that reached a final state, by status.", ["status"]
)
IMPORT_SECONDS = Histogram(
    "tidegate_import_duration_seconds",
    "Time from an import's acceptance to its final state.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
REDRIVES = Counter(
    "tidegate_redrives_total",
    "Steps the reconciler re-drove, by action (chunk_resent: a chunk.submitted published again"
    " from the outbox; counted_from_ledger: a lost chunk.loaded fact counted from the ledger;"
    " import_failed: an import given up on).",
    ["action"],
)
RECONCILER_PASSES = Counter(
    "tidegate_reconciler_passes_total",
    "Passes the reconciler finished (one auditor at a time makes them; a pass never waits"
    " long on a lock, so this keeps growing).",
)
IMPORTS_UNFINISHED = Gauge("tidegate_imports_unfinished", "Imports not yet in a final state.")
IMPORTS_STUCK = Gauge(
    "tidegate_imports_stuck", "Unfinished imports re-driven and still without progress."
)
OLDEST_CHUNK_SECONDS = Gauge(
    "tidegate_oldest_unfinished_chunk_age_seconds",
    "Age of the oldest chunk not yet through the pipeline (0: none).",
)
RETAINED_DELETED = Counter(
    "tidegate_retention_deleted_rows_total",
    "Rows the retention job deleted, by table (what finished imports no longer keep).",
    ["table"],
)
