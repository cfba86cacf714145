"""Type rules derived from a column's PostgreSQL definition, with the seed's coercions:
ISO 8601 dates and timestamps, decimal point numbers, booleans true/false, 1/0, yes/no.

Every rule is at least as strict as PostgreSQL's own input function, so a row that passes
is a row the loader can insert (constraints aside). An empty cell is NULL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time

import msgspec

from shared.catalog import Column
from shared.error_codes import CellProblem, ErrorCode

CellCheck = Callable[[str], CellProblem | None]  # value -> (code, message) or None
# values -> the positions of those the cell check may refuse (every other one surely passes)
ColumnCheck = Callable[[Sequence[str]], list[int]]

_INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_INT = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)
_DECIMAL = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+\s*", re.ASCII)
_SPECIAL_FLOATS = {"nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"}
_BOOLEANS = {"true", "false", "1", "0", "yes", "no"}
_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*", re.ASCII)
_TIME = r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
_TIMESTAMP = re.compile(rf"\s*\d{{4}}-\d{{2}}-\d{{2}}[T ]{_TIME}\s*", re.ASCII)
_TIMESTAMPTZ = re.compile(
    rf"\s*\d{{4}}-\d{{2}}-\d{{2}}[T ]{_TIME}(?:Z|[+-]\d{{2}}(?::?\d{{2}})?)?\s*", re.ASCII
)
_TIME_OF_DAY = re.compile(rf"\s*{_TIME}\s*", re.ASCII)
_UUID = re.compile(r"\s*[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\s*", re.ASCII)

NUMBER_HINT = "use a decimal point, not a comma"


def _integer(type_name: str) -> CellCheck:
    bound = _INT_RANGES[type_name]

    def check(value: str) -> CellProblem | None:
        if not _INT.fullmatch(value):
            if _DECIMAL_COMMA.fullmatch(value):
                return "invalid_number", f"not a whole number ({NUMBER_HINT})"
            return "invalid_integer", "not a whole number"
        if not -bound <= int(value) < bound:
            return "out_of_range", f"out of range for {type_name}"
        return None

    return check


def _decimal(column: Column) -> CellCheck:
    precision, scale = column.precision, column.scale

    def check(value: str) -> CellProblem | None:
        if not _DECIMAL.fullmatch(value):
            if _DECIMAL_COMMA.fullmatch(value):
                return "decimal_comma", f"{value.strip()!r} is not a number: {NUMBER_HINT}"
            return "invalid_number", f"not a number ({NUMBER_HINT})"
        if precision is None or scale is None:
            return None
        mantissa = value.strip().lstrip("+-")
        if "e" in mantissa.lower():
            return "invalid_number", "exponent notation is not accepted for numeric(p,s)"
        whole, _, fraction = mantissa.partition(".")
        if len(whole.lstrip("0")) > precision - scale:
            return "out_of_range", f"too many digits before the decimal point for {column.type_sql}"
        if len(fraction.rstrip("0")) > scale:
            return "too_many_decimals", f"more than {scale} digits after the point"
        return None

    return check


def _float(value: str) -> CellProblem | None:
    if _DECIMAL.fullmatch(value) or value.strip().lower() in _SPECIAL_FLOATS:
        return None
    if _DECIMAL_COMMA.fullmatch(value):
        return "decimal_comma", f"{value.strip()!r} is not a number: {NUMBER_HINT}"
    return "invalid_number", f"not a number ({NUMBER_HINT})"


def _boolean(value: str) -> CellProblem | None:
    if value.strip().lower() in _BOOLEANS:
        return None
    return "invalid_boolean", "expected true/false, 1/0 or yes/no"


def _parsed(
    pattern: re.Pattern[str], parse: Callable[[str], object], code: ErrorCode, message: str
) -> CellCheck:
    def check(value: str) -> CellProblem | None:
        if pattern.fullmatch(value):
            try:
                parse(value.strip())
            except ValueError:
                return code, f"{message}: no such date or time"
            return None
        return code, message

    return check


def _uuid(value: str) -> CellProblem | None:
    return None if _UUID.fullmatch(value) else ("invalid_uuid", "not a UUID")


def _json(value: str) -> CellProblem | None:
    try:
        msgspec.json.decode(value)
    except msgspec.DecodeError:
        return "invalid_json", "not valid JSON"
    return None


def _length(limit: int) -> CellCheck:
    def check(value: str) -> CellProblem | None:
        if len(value) > limit:
            return "too_long", f"{len(value)} characters; at most {limit} allowed"
        return None

    return check


def cell_check(column: Column) -> CellCheck | None:
    """The rule for a non-empty value of `column`; None when any text is acceptable."""
    name = column.type_name
    if name in _INT_RANGES:
        return _integer(name)
    if name == "numeric":
        return _decimal(column)
    if name in ("float4", "float8"):
        return _float
    if name == "bool":
        return _boolean
    if name == "date":
        return _parsed(
            _DATE, date.fromisoformat, "invalid_date", "expected an ISO 8601 date (YYYY-MM-DD)"
        )
    if name == "timestamp":
        return _parsed(
            _TIMESTAMP,
            datetime.fromisoformat,
            "invalid_timestamp",
            "expected an ISO 8601 timestamp without offset (YYYY-MM-DD HH:MM:SS)",
        )
    if name == "timestamptz":
        return _parsed(
            _TIMESTAMPTZ,
            datetime.fromisoformat,
            "invalid_timestamp",
            "expected an ISO 8601 timestamp (YYYY-MM-DDTHH:MM:SS[+HH:MM])",
        )
    if name == "time":
        return _parsed(
            _TIME_OF_DAY,
            time.fromisoformat,
            "invalid_time",
            "expected an ISO 8601 time (HH:MM[:SS])",
        )
    if name == "uuid":
        return _uuid
    if name in ("json", "jsonb"):
        return _json
    if name in ("varchar", "bpchar") and column.max_length is not None:
        return _length(column.max_length)
    return None  # text and types PostgreSQL checks itself (the loader isolates its refusals)


# Whole-column fast paths: one regex over the column (values joined by NUL, which no value
# can hold) and C-level conversions. Each names a superset of the values its cell check
# refuses (usually none), so only those are looked at value by value, and the errors
# reported are the cell checks' own.


def _joined(pattern: str) -> ColumnCheck:
    whole = re.compile(rf"(?:{pattern})?(?:\x00(?:{pattern})?)*", re.ASCII)

    def suspects(values: Sequence[str]) -> list[int]:
        text = "\x00".join(values)
        if text.count("\x00") != len(values) - 1:
            return list(range(len(values)))  # a value holds a NUL: look at each
        found: list[int] = []
        start, index = 0, 0  # where value `index` starts
        while True:
            match = whole.match(text, start)
            assert match is not None  # the pattern matches the empty string
            stop = match.end()
            if stop == len(text):
                return found
            # The match ends in (or just before) the first value it could not take.
            index += text.count("\x00", start, stop)
            found.append(index)
            start = text.find("\x00", stop)
            if start < 0:
                return found

    return suspects


def _parses(parse: Callable[[str], object], value: str) -> bool:
    try:
        parse(value.strip())
    except ValueError:
        return False
    return True


def _converts(matches: ColumnCheck, parse: Callable[[str], object]) -> ColumnCheck:
    def suspects(values: Sequence[str]) -> list[int]:
        found = matches(values)
        if not found:
            try:
                for _ in map(parse, map(str.strip, filter(None, values))):
                    pass
            except ValueError:
                pass
            else:
                return found
        skip = set(found)
        return sorted(
            found
            + [i for i, v in enumerate(values) if v and i not in skip and not _parses(parse, v)]
        )

    return suspects


def _integers(type_name: str) -> ColumnCheck:
    bound = _INT_RANGES[type_name]
    matches = _joined(_INT.pattern)

    def suspects(values: Sequence[str]) -> list[int]:
        found = matches(values)
        skip = set(found)
        numbers = [int(v) for i, v in enumerate(values) if v and i not in skip]
        if not numbers or (-bound <= min(numbers) and max(numbers) < bound):
            return found
        return sorted(
            found
            + [
                i
                for i, v in enumerate(values)
                if v and i not in skip and not -bound <= int(v) < bound
            ]
        )

    return suspects


def _decimals(column: Column) -> ColumnCheck:
    precision, scale = column.precision, column.scale
    if precision is None or scale is None:
        return _joined(_DECIMAL.pattern)
    # At most precision-scale digits before the point (leading zeros aside) and scale
    # after it (trailing zeros aside); no exponent.
    return _joined(rf"\s*[+-]?(?=\.?\d)0*\d{{0,{precision - scale}}}(?:\.\d{{0,{scale}}}0*)?\s*")


def _booleans(values: Sequence[str]) -> list[int]:
    if set(map(str.lower, map(str.strip, filter(None, values)))) <= _BOOLEANS:
        return []
    return [i for i, v in enumerate(values) if v and v.strip().lower() not in _BOOLEANS]


def column_check(column: Column) -> ColumnCheck | None:
    """A whole-column check: the positions of the non-empty values `cell_check` may refuse,
    every other one it accepts (None: the column's type has no such fast path)."""
    name = column.type_name
    if name in _INT_RANGES:
        return _integers(name)
    if name == "numeric":
        return _decimals(column)
    if name in ("float4", "float8"):
        return _joined(_DECIMAL.pattern)
    if name == "bool":
        return _booleans
    if name == "date":
        return _converts(_joined(_DATE.pattern), date.fromisoformat)
    if name == "timestamp":
        return _converts(_joined(_TIMESTAMP.pattern), datetime.fromisoformat)
    if name == "timestamptz":
        return _converts(_joined(_TIMESTAMPTZ.pattern), datetime.fromisoformat)
    if name == "uuid":
        return _joined(_UUID.pattern)
    return None
