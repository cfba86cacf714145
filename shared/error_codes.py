"""The stable row error codes (docs/problems.md lists them; a test keeps both in step).

Each code belongs to a category; the report's `missing_required_fields` counts the
`required` category per column and `invalid_format_fields` the `format` category.
"""

from __future__ import annotations

from typing import Literal

STRUCTURE = "structure"
REQUIRED = "required"
FORMAT = "format"
CONTENT = "content"
DUPLICATE = "duplicate"
RELATION = "relation"
DATABASE = "database"

ErrorCode = Literal[
    "wrong_field_count",
    "required",
    "invalid_integer",
    "invalid_number",
    "decimal_comma",
    "too_many_decimals",
    "out_of_range",
    "invalid_boolean",
    "invalid_date",
    "ambiguous_date",
    "invalid_time",
    "invalid_timestamp",
    "invalid_uuid",
    "invalid_json",
    "invalid_email",
    "invalid_url",
    "pattern_mismatch",
    "not_allowed",
    "too_long",
    "invalid_format",
    "control_character",
    "formula",
    "markup",
    "duplicate_in_file",
    "duplicate_in_table",
    "missing_reference",
    "check_violation",
    "exclusion_violation",
    "rejected_by_trigger",
    "rejected_by_database",
]
"""Every row error code (the type of `RowError.code`); CODES describes each one."""

CellProblem = tuple[ErrorCode, str]  # what a cell check found: (code, message)

CODES: dict[ErrorCode, tuple[str, str]] = {
    "wrong_field_count": (STRUCTURE, "the row has more or fewer fields than the header"),
    "required": (
        REQUIRED,
        "no value for a NOT NULL column, a rule-file required column or a required association",
    ),
    "invalid_integer": (FORMAT, "not a whole number"),
    "invalid_number": (FORMAT, "not a number"),
    "decimal_comma": (FORMAT, "a decimal comma where a decimal point is expected (`12,50`)"),
    "too_many_decimals": (FORMAT, "more digits after the point than numeric(p,s) allows"),
    "out_of_range": (FORMAT, "outside the type's range or the rule file's min/max"),
    "invalid_boolean": (FORMAT, "not true/false, 1/0 or yes/no"),
    "invalid_date": (FORMAT, "not an ISO 8601 date (or an opt-in format), or no such date"),
    "ambiguous_date": (FORMAT, "two opt-in date formats read the value as different dates"),
    "invalid_time": (FORMAT, "not an ISO 8601 time"),
    "invalid_timestamp": (FORMAT, "not an ISO 8601 timestamp"),
    "invalid_uuid": (FORMAT, "not a UUID"),
    "invalid_json": (FORMAT, "not valid JSON"),
    "invalid_email": (FORMAT, 'not an email address (rule file `format = "email"`)'),
    "invalid_url": (FORMAT, 'not an http(s) URL (rule file `format = "url"`)'),
    "pattern_mismatch": (FORMAT, "does not match the rule file's `pattern`"),
    "not_allowed": (FORMAT, "not one of an enum type's labels or the rule file's `allowed`"),
    "too_long": (FORMAT, "longer than varchar(n)/char(n) or the content limit"),
    "invalid_format": (FORMAT, "refused by PostgreSQL's input function"),
    "control_character": (CONTENT, "a control character (NUL, C0/C1, bidirectional override)"),
    "formula": (CONTENT, "starts like a spreadsheet formula (= + - @ tab CR LF)"),
    "markup": (CONTENT, "HTML/script markup in a text field"),
    "duplicate_in_file": (DUPLICATE, "a key value repeats an earlier line of the file"),
    "duplicate_in_table": (DUPLICATE, "a key value already exists in the table"),
    "missing_reference": (RELATION, "a foreign key or required association matches no row"),
    "check_violation": (DATABASE, "refused by a CHECK constraint"),
    "exclusion_violation": (DATABASE, "refused by an exclusion constraint"),
    "rejected_by_trigger": (DATABASE, "a trigger raised an exception"),
    "rejected_by_database": (DATABASE, "any other refusal by PostgreSQL (message included)"),
}


def codes_in(category: str) -> list[ErrorCode]:
    return [code for code, (cat, _) in CODES.items() if cat == category]
