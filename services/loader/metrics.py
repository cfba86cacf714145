"""Loader metrics."""

from prometheus_client import Counter, Histogram

ROWS_LOADED = Counter(
    "tidegate_loader_rows_total", "Valid rows offered to the database, by outcome.", ["outcome"]
)
CHUNK_LOAD_SECONDS = Histogram(
    "tidegate_loader_chunk_seconds",
    "Time to load one chunk, ledger included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
