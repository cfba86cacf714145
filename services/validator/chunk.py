"""Validating the cells of one chunk: a pure function of the column rules and the rows."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from services.validator.column import ColumnRule
from shared.events import RowError

MAX_VALUE_IN_REPORT = 500  # characters of an offending value kept in the report


class ChunkResult(msgspec.Struct, frozen=True):
    rows: list[list[str]]  # the rows that passed, neutralised/coerced where that applies
    lines: list[int]
    errors: list[RowError]  # errors and warnings, in line order
    invalid_rows: int


def report_value(value: str) -> str:
    return value[:MAX_VALUE_IN_REPORT]


def _well_shaped(
    width: int, rows: list[list[str]], lines: Sequence[int]
) -> tuple[list[list[str]], list[int], list[RowError]]:
    """The rows with `width` fields, their lines, and an error for each other row."""
    if all(len(row) == width for row in rows):
        return rows, list(lines), []
    shaped, shaped_lines, errors = [], [], []
    for row, line in zip(rows, lines, strict=True):
        if len(row) == width:
            shaped.append(row)
            shaped_lines.append(line)
        else:
            errors.append(
                RowError(
                    line=line,
                    column=None,
                    code="wrong_field_count",
                    message=f"expected {width} fields, found {len(row)}",
                )
            )
    return shaped, shaped_lines, errors


def validate_rows(
    rules: Sequence[ColumnRule], rows: list[list[str]], lines: Sequence[int]
) -> ChunkResult:
    """Split rows into valid ones and one error per bad cell (or per ragged row)."""
    shaped, shaped_lines, errors = _well_shaped(len(rules), rows, lines)
    bad: set[int] = set()
    new_columns: dict[int, list[str]] = {}
    if shaped:
        for position, (values, rule) in enumerate(
            zip(zip(*shaped, strict=True), rules, strict=True)
        ):
            findings, current = rule.check(values)
            if current != list(values):
                new_columns[position] = current
            for finding in findings:
                if finding.fatal:
                    bad.add(finding.row)
                errors.append(
                    RowError(
                        line=shaped_lines[finding.row],
                        column=rule.column.name,
                        code=finding.code,
                        message=finding.message,
                        value=report_value(values[finding.row]),
                        severity="error" if finding.fatal else "warning",
                    )
                )
    if new_columns:
        shaped = [list(row) for row in shaped]
        for position, current in new_columns.items():
            for row, value in zip(shaped, current, strict=True):
                row[position] = value
    if bad:
        valid = [row for i, row in enumerate(shaped) if i not in bad]
        valid_lines = [line for i, line in enumerate(shaped_lines) if i not in bad]
    else:
        valid, valid_lines = shaped, shaped_lines
    errors.sort(key=lambda e: e.line)
    return ChunkResult(valid, valid_lines, errors, len(rows) - len(valid))
