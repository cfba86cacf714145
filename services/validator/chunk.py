"""Validating one chunk: a pure function of the table's rules and the rows."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from services.validator.rules import ColumnRule
from shared.events import RowError

MAX_VALUE_IN_REPORT = 500  # characters of an offending value kept in the report


class ChunkResult(msgspec.Struct, frozen=True):
    rows: list[list[str]]
    lines: list[int]
    errors: list[RowError]
    invalid_rows: int


def validate_rows(
    rules: Sequence[ColumnRule], rows: list[list[str]], lines: Sequence[int]
) -> ChunkResult:
    """Split rows into valid ones and one error per bad cell (or per ragged row)."""
    width = len(rules)
    errors: list[RowError] = []
    if all(len(row) == width for row in rows):
        shaped, shaped_lines = rows, list(lines)
    else:
        shaped, shaped_lines = [], []
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
    bad: set[int] = set()
    if shaped:
        for values, rule in zip(zip(*shaped, strict=True), rules, strict=True):
            for index, code, message in rule.errors(values):
                bad.add(index)
                errors.append(
                    RowError(
                        line=shaped_lines[index],
                        column=rule.column.name,
                        code=code,
                        message=message,
                        value=values[index][:MAX_VALUE_IN_REPORT],
                    )
                )
    if bad:
        valid = [row for i, row in enumerate(shaped) if i not in bad]
        valid_lines = [line for i, line in enumerate(shaped_lines) if i not in bad]
    else:
        valid, valid_lines = shaped, shaped_lines
    errors.sort(key=lambda e: e.line)
    return ChunkResult(valid, valid_lines, errors, len(rows) - len(valid))
