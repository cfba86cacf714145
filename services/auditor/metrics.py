"""Auditor metrics: imports by outcome and their duration."""

from prometheus_client import Counter, Histogram

IMPORTS_FINISHED = Counter(
    "tidegate_imports_finished_total", "Imports that reached a final state, by status.", ["status"]
)
IMPORT_SECONDS = Histogram(
    "tidegate_import_duration_seconds",
    "Time from an import's acceptance to its final state.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
