"""Validating the cells of one chunk: a pure function of the column rules and the rows."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from services.validator.column import ColumnRule
from shared.events import CellChange, RowError

MAX_VALUE_IN_REPORT = 500  # characters of an offending value kept in the report


class ChunkResult(msgspec.Struct, frozen=True):
    rows: list[list[str]]  # the rows that passed, neutralised/coerced where that applies
    lines: list[int]
    errors: list[RowError]  # errors and warnings, in line order
    invalid_rows: int
    positions: list[int]  # where each passing row is in the chunk
    changes: list[CellChange]  # the cells of passing rows that were changed


def report_value(value: str) -> str:
    return value[:MAX_VALUE_IN_REPORT]


def _well_shaped(
    width: int, rows: list[list[str]], lines: Sequence[int]
) -> tuple[list[list[str]], list[int], list[int], list[RowError]]:
    """The rows with `width` fields, their lines and positions, and an error for each
    other row."""
    if set(map(len, rows)) <= {width}:
        return rows, list(lines), list(range(len(rows))), []
    shaped, shaped_lines, positions, errors = [], [], [], []
    for position, (row, line) in enumerate(zip(rows, lines, strict=True)):
        if len(row) == width:
            shaped.append(row)
            shaped_lines.append(line)
            positions.append(position)
        else:
            errors.append(
                RowError(
                    line=line,
                    column=None,
                    code="wrong_field_count",
                    message=f"expected {width} fields, found {len(row)}",
                )
            )
    return shaped, shaped_lines, positions, errors


def validate_rows(
    rules: Sequence[ColumnRule], rows: list[list[str]], lines: Sequence[int]
) -> ChunkResult:
    """Split rows into valid ones and one error per bad cell (or per ragged row)."""
    shaped, shaped_lines, positions, errors = _well_shaped(len(rules), rows, lines)
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
    changes = []
    if new_columns:
        original = shaped
        shaped = [list(row) for row in shaped]
        for column, current in new_columns.items():
            for i, (row, value) in enumerate(zip(shaped, current, strict=True)):
                if value != original[i][column] and i not in bad:
                    changes.append(CellChange(positions[i], column, value))
                row[column] = value
        changes.sort(key=lambda c: (c.row, c.column))
    if bad:
        keep = [i for i in range(len(shaped)) if i not in bad]
        valid = [shaped[i] for i in keep]
        valid_lines = [shaped_lines[i] for i in keep]
        positions = [positions[i] for i in keep]
    else:
        valid, valid_lines = shaped, shaped_lines
    errors.sort(key=lambda e: e.line)
    return ChunkResult(valid, valid_lines, errors, len(rows) - len(valid), positions, changes)
