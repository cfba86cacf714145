"""Loader metrics."""

from prometheus_client import Counter, Histogram

ROWS_LOADED = Counter(
    "tidegate_loader_rows_total", "Valid rows offered to the database, by outcome.", ["outcome"]
)
CHUNKS_BY_PATH = Counter(
    "tidegate_loader_chunks_total",
    "Chunks loaded, by path: copy (COPY in the chunk's transaction), statement (an INSERT"
    " per chunk: duplicate policies, dry runs), isolated (the database refused the COPY, so"
    " the refused rows were found by bisection).",
    ["path"],
)
CHUNK_LOAD_SECONDS = Histogram(
    "tidegate_loader_chunk_seconds",
    "Time to load one chunk, ledger included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OPERATIONS_FINISHED = Counter(
    "tidegate_loader_operations_total",
    "Operations done (rollback, backup, restore, delete_backup), by kind and status"
    " (completed, refused, failed).",
    ["kind", "status"],
)
OPERATION_SECONDS = Histogram(
    "tidegate_loader_operation_seconds",
    "Time to do one operation, its outcome committed.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
ROWS_ROLLED_BACK = Counter(
    "tidegate_loader_rows_rolled_back_total",
    "Rows a rollback deleted (inserted by the import) or restored (updated by it).",
    ["action"],
)
