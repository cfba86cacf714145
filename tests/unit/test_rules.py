"""Cell rules from column definitions, with the seed's coercions."""

from __future__ import annotations

from services.validator.column import ColumnRule
from services.validator.rules import cell_check, column_check
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


# Values of each type, good and bad, for the whole-column fast paths.
SAMPLES = {
    "int2": ["1", " -32768 ", "32767", "32768", "+5", "1.0", "", "٣", "1\n2", "0x10"],
    "int8": ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "7 "],
    "numeric": ["1234.56", "-0.5", ".5", "0001234.50", "12", "12345.6", "1.005", "1.0050",
                "100000", "1e3", ".", "+", "5.", "1.10", "--1", "1,5", " 3.25 ", "1234.567"],
    "float8": ["1.5", "-2e10", "1,5", ".", "3."],
    "bool": ["true", "FALSE", " yes ", "0", "1", "maybe", "t", "Y"],
    "date": ["2024-02-29", "2023-02-29", "2024-13-01", " 2024-01-01 ", "24-01-01", "2024-1-1"],
    "timestamp": ["2024-01-01 10:00", "2024-01-01T10:00:00.5", "2024-01-01 25:00", "2024-01-01"],
    "timestamptz": ["2024-01-01T10:00:00Z", "2024-01-01 10:00+02:00", "2024-02-30T00:00Z",
                    "2024-01-01T10:00:00+0530", "2024-01-01T10:00:00 CET"],
    "uuid": ["8f14e45f-ceea-467a-9af8-2f2d4c6f3a10", "8F14E45F-CEEA-467A-9AF8-2F2D4C6F3A10",
             "8f14e45fceea467a9af82f2d4c6f3a10", "nope"],
}  # fmt: skip


def test_the_whole_column_check_suspects_every_value_its_cell_check_refuses() -> None:
    """The fast path never passes over what the cell check would refuse; a clean column of
    each type has no suspects."""
    for type_name, samples in SAMPLES.items():
        column = col(type_name, precision=6, scale=2) if type_name == "numeric" else col(type_name)
        whole, each = column_check(column), cell_check(column)
        assert whole is not None and each is not None
        good = [v for v in samples if v and each(v) is None]
        assert good and whole([*good, ""]) == [], type_name
        for value in samples:
            if value and each(value) is not None:
                assert whole([*good, value, *good]) == [len(good)], (type_name, value)
        for n in range(1, len(samples) + 1):  # mixtures: exactly the refused ones here
            mixture = samples[:n]
            refused = [i for i, v in enumerate(mixture) if v and each(v) is not None]
            assert whole(mixture) == refused, (type_name, n)
            assert whole([*mixture, *mixture]) == refused + [n + i for i in refused]
    # A fast path may leave a value to the cell check (which accepts it): never the reverse.
    floats = col("float8")
    assert column_check(floats)(["nan", "Infinity"]) == [0, 1]  # type: ignore[misc]
    assert codes(floats, "nan", "Infinity") == [None, None]


def test_a_value_holding_a_nul_makes_every_value_a_suspect() -> None:
    check = column_check(col("int4"))
    assert check is not None
    assert check(["1", "2\x003", "4"]) == [0, 1, 2]
