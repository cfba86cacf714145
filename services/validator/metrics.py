"""Validator metrics."""

from prometheus_client import Counter

ROWS_VALIDATED = Counter(
    "tidegate_validator_rows_total", "Rows validated, by outcome (valid, invalid).", ["outcome"]
)
CELL_ERRORS = Counter(
    "tidegate_validator_cell_errors_total", "Rejected cells, by error code.", ["code"]
)
