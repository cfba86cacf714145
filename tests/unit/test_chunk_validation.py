"""Validating a chunk: valid rows kept in order, one error per bad cell or ragged row."""

from __future__ import annotations

from services.validator.chunk import validate_rows
from services.validator.column import ColumnRule
from shared.rulebook import ColumnRules, ContentRules
from tests.unit.columns import column


def rules() -> list[ColumnRule]:
    return [
        ColumnRule(column(name, type_name, not_null=not_null), ColumnRules(), ContentRules())
        for name, type_name, not_null in (("id", "int8", True), ("day", "date", False))
    ]


def test_valid_rows_pass_through_unchanged() -> None:
    rows = [["1", "2024-01-01"], ["2", ""]]
    result = validate_rows(rules(), rows, [2, 3])
    assert result.rows == rows
    assert result.lines == [2, 3]
    assert result.errors == []
    assert result.invalid_rows == 0


def test_each_bad_cell_and_ragged_row_is_reported_once() -> None:
    rows = [["1", "2024-01-01"], ["x", "2024-13-01"], ["3"], ["", "2024-02-02"], ["5", "bad", "z"]]
    result = validate_rows(rules(), rows, [2, 3, 5, 6, 7])
    assert result.rows == [["1", "2024-01-01"]]
    assert result.lines == [2]
    assert result.invalid_rows == 4
    assert [(e.line, e.column, e.code, e.value) for e in result.errors] == [
        (3, "id", "invalid_integer", "x"),
        (3, "day", "invalid_date", "2024-13-01"),
        (5, None, "wrong_field_count", None),
        (6, "id", "required", ""),
        (7, None, "wrong_field_count", None),
    ]
