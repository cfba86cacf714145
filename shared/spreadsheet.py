"""Cells written to CSV files people open in spreadsheets (error reports, exports)."""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def escape_cell(value: str) -> str:
    """OWASP CSV-injection guidance: a cell that a spreadsheet would read as a formula
    gets a leading single quote. Plain numbers such as `-12.5` are left alone."""
    if value.startswith(FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value
