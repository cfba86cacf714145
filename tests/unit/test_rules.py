"""Cell rules from column definitions, with the seed's coercions."""

from __future__ import annotations

from services.validator.column import ColumnRule
from shared.catalog import Column
from shared.rulebook import ColumnRules, ContentRules
from tests.unit.columns import column


def col(type_name: str, **extra: object) -> Column:
    return column("c", type_name, **extra)


def codes(column: Column, *values: str) -> list[str | None]:
    findings, _ = ColumnRule(column, ColumnRules(), ContentRules()).check(values)
    found = {f.row: f.code for f in findings}
    return [found.get(i) for i in range(len(values))]


def test_integers_and_their_ranges() -> None:
    assert codes(col("int4"), "12", "-7", " 42 ", "+3", "", "2147483647") == [None] * 6
    assert codes(col("int4"), "2147483648", "1.5", "1_000", "١٢", "12,5", "x") == [
        "out_of_range",
        "invalid_integer",
        "invalid_integer",
        "invalid_integer",
        "invalid_number",
        "invalid_integer",
    ]
    assert codes(col("int2"), "32768") == ["out_of_range"]
    assert codes(col("int8"), "9223372036854775807", "9223372036854775808") == [
        None,
        "out_of_range",
    ]


def test_decimals_need_a_point_not_a_comma() -> None:
    numeric = col("numeric", precision=6, scale=2)
    assert codes(numeric, "1234.56", "-0.5", ".5", "0001234.50", "12") == [None] * 5
    assert codes(numeric, "12,50", "12345.6", "1.234", "1e3", "abc") == [
        "decimal_comma",
        "out_of_range",
        "too_many_decimals",
        "invalid_number",
        "invalid_number",
    ]
    [finding], _ = ColumnRule(numeric, ColumnRules(), ContentRules()).check(["12,50"])
    message = finding.message
    assert "decimal point, not a comma" in message
    assert codes(col("numeric"), "1e3", "123456789.123456789") == [None, None]


def test_floats() -> None:
    assert codes(col("float8"), "1.5e-3", "NaN", "-Infinity", "7") == [None] * 4
    assert codes(col("float8"), "1,5", "one") == ["decimal_comma", "invalid_number"]


def test_booleans_accept_the_seeds_spellings_only() -> None:
    good = ["true", "FALSE", "1", "0", "yes", "No", " true "]
    assert codes(col("bool"), *good) == [None] * len(good)
    assert codes(col("bool"), "t", "y", "on", "maybe") == ["invalid_boolean"] * 4


def test_dates_are_iso_8601() -> None:
    assert codes(col("date"), "2024-02-29", "1999-12-31") == [None, None]
    assert (
        codes(col("date"), "2023-02-29", "24/01/2024", "2024-1-5", "20240105")
        == ["invalid_date"] * 4
    )


def test_timestamps() -> None:
    ts, tstz = col("timestamp"), col("timestamptz")
    assert codes(ts, "2024-01-05 10:30", "2024-01-05T10:30:00.123456") == [None, None]
    assert codes(ts, "2024-01-05T10:30:00+02:00", "2024-01-05") == ["invalid_timestamp"] * 2
    assert (
        codes(
            tstz,
            "2024-01-05T10:30:00Z",
            "2024-01-05 10:30:00+0530",
            "2024-01-05T10:30:00-03:00",
            "2024-01-05T10:30",
        )
        == [None] * 4
    )
    assert codes(tstz, "2024-01-05T25:00:00Z", "yesterday") == ["invalid_timestamp"] * 2


def test_uuid_json_and_lengths() -> None:
    assert codes(col("uuid"), "6f1c2b9e-0d5b-4a7a-9a43-2d8f6f0b8e11", "nope") == [
        None,
        "invalid_uuid",
    ]
    assert codes(col("jsonb"), '{"a": [1, 2]}', "{a: 1}") == [None, "invalid_json"]
    varchar = col("varchar", max_length=3)
    assert codes(varchar, "abc", "日本語", "abcd") == [None, None, "too_long"]


def test_required_and_nul() -> None:
    required = col("text", not_null=True)
    assert codes(required, "x", "") == [None, "required"]
    assert codes(col("text"), "ok", "bad\x00") == [None, "control_character"]
    assert codes(col("int4"), "") == [None]  # empty is NULL, allowed when nullable
