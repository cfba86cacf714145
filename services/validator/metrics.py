"""Validator metrics."""

from prometheus_client import Counter, Histogram

ROWS_VALIDATED = Counter(
    "tidegate_validator_rows_total",
    "Rows validated, by outcome (valid, invalid, skipped).",
    ["outcome"],
)
CELL_ERRORS = Counter(
    "tidegate_validator_findings_total",
    "Row errors and warnings found by the validator, by code and severity.",
    ["code", "severity"],
)
PHASE_SECONDS = Histogram(
    "tidegate_validator_phase_seconds",
    "Seconds per chunk spent on cell rules (cells) and on checks against other rows (relations).",
    ["phase"],
)
VERIFIED_ROWS = Counter(
    "tidegate_validator_verified_rows_total", "Rows of tables checked by verify-data."
)
