"""Validator metrics."""

from prometheus_client import Counter

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
