"""Everything checked about one column of a chunk: required values, malicious content,
opt-in date formats, the PostgreSQL type, then the rule file's allowed values, formats,
patterns and ranges. A cell gets at most one error; warnings may come with it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from services.validator.content import Finding, scan_text
from services.validator.rules import cell_check, column_check
from shared.catalog import TEXT_TYPES, Column
from shared.error_codes import CellProblem, ErrorCode
from shared.rulebook import ColumnRules, ContentRules

ValueCheck = Callable[[str], CellProblem | None]

_EMAIL = re.compile(r"[^@\s\"(),:;<>\[\\\]]+@[^@\s\"(),:;<>\[\\\]]+\.[^@\s\"(),:;<>\[\\\].]+")
_URL = re.compile(r"https?://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?", re.IGNORECASE)


def _allowed(labels: Sequence[str]) -> ValueCheck:
    accepted = frozenset(labels)
    shown = ", ".join(labels[:10]) + (", …" if len(labels) > 10 else "")

    def check(value: str) -> CellProblem | None:
        return None if value in accepted else ("not_allowed", f"expected one of: {shown}")

    return check


def _format(name: str) -> ValueCheck:
    formats: dict[str, tuple[re.Pattern[str], ErrorCode, str]] = {
        "email": (_EMAIL, "invalid_email", "an email address"),
        "url": (_URL, "invalid_url", "an http(s) URL"),
    }
    pattern, code, what = formats[name]

    def check(value: str) -> CellProblem | None:
        if len(value) <= 254 and pattern.fullmatch(value.strip()):
            return None
        return code, f"not {what}"

    return check


def _pattern(regex: str) -> ValueCheck:
    compiled = re.compile(regex)

    def check(value: str) -> CellProblem | None:
        if compiled.fullmatch(value):
            return None
        return "pattern_mismatch", f"does not match the pattern {regex}"

    return check


def _range(low: float | None, high: float | None) -> ValueCheck:
    def check(value: str) -> CellProblem | None:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None  # the type check reports it
        if low is not None and number < Decimal(str(low)):
            return "out_of_range", f"must be at least {low:g}"
        if high is not None and number > Decimal(str(high)):
            return "out_of_range", f"must be at most {high:g}"
        return None

    return check


class DateCoercion:
    """Opt-in date formats (strptime directives), tried only when the value is not ISO.
    A value two formats read as different dates is an error, never a guess."""

    def __init__(self, formats: Sequence[str], type_name: str, iso: ValueCheck) -> None:
        self._formats = tuple(formats)
        self._type_name = type_name
        self._iso = iso

    def convert(self, value: str) -> str | CellProblem:
        """The ISO text of `value`, or (code, message)."""
        if self._iso(value) is None:
            return value
        readings: dict[str, str] = {}
        for fmt in self._formats:
            try:
                parsed = datetime.strptime(value.strip(), fmt)  # noqa: DTZ007 (zone in fmt)
            except ValueError:
                continue
            readings.setdefault(self._iso_text(parsed), fmt)
        if len(readings) == 1:
            return next(iter(readings))
        if readings:
            return "ambiguous_date", "matches several date formats with different meanings: " + (
                ", ".join(f"{fmt} → {iso}" for iso, fmt in readings.items())
            )
        return "invalid_date", "expected ISO 8601 or one of: " + ", ".join(self._formats)

    def _iso_text(self, parsed: datetime) -> str:
        if self._type_name == "date":
            return date.isoformat(parsed.date())
        if self._type_name == "timestamptz" and parsed.tzinfo is not None:
            return parsed.astimezone(UTC).isoformat()
        return parsed.isoformat(sep=" ")


class ColumnRule:
    """Checks one column of a chunk at once; clean columns avoid per-cell Python work."""

    def __init__(self, column: Column, rules: ColumnRules, content: ContentRules) -> None:
        self.column = column
        self._required = column.not_null or rules.required
        self._content = content if column.type_name in TEXT_TYPES else None
        type_check = cell_check(column)
        self._coercion = (
            DateCoercion(rules.date_formats, column.type_name, type_check)
            if rules.date_formats and type_check is not None
            else None
        )
        checks: list[ValueCheck] = [] if type_check is None else [type_check]
        if column.enum_labels is not None:
            checks.append(_allowed(column.enum_labels))
        if rules.allowed is not None:
            checks.append(_allowed(rules.allowed))
        if rules.format is not None:
            checks.append(_format(rules.format))
        if rules.pattern is not None:
            checks.append(_pattern(rules.pattern))
        if rules.min is not None or rules.max is not None:
            checks.append(_range(rules.min, rules.max))
        self._checks = checks
        # The type check alone: only the values the whole-column check suspects get a look.
        self._suspects = (
            column_check(column)
            if len(checks) == 1 and type_check is not None and self._coercion is None
            else None
        )
        # varchar(n) with no other rule: only values over n need a look.
        self._length_only = (
            column.type_name in ("varchar", "bpchar")
            and column.max_length is not None
            and len(checks) == 1
        )

    def check(self, values: Sequence[str]) -> tuple[list[Finding], list[str]]:
        """Findings, and the values to load (neutralised or coerced where that applies)."""
        findings: list[Finding] = []
        current = list(values)
        if self._required and "" in values:
            findings += [
                Finding(i, "required", "a value is required") for i, v in enumerate(values) if not v
            ]
        if self._content is not None:
            scanned, current = scan_text(current, self._content)
            findings += scanned
        elif "\x00" in "".join(values):
            findings += [
                Finding(i, "control_character", "contains the control character U+0000")
                for i, v in enumerate(values)
                if "\x00" in v
            ]
        if self._coercion is not None:
            findings += self._coerce(current)
        if self._checks and not (
            self._length_only and max(map(len, current), default=0) <= (self.column.max_length or 0)
        ):
            failed = {f.row for f in findings if f.fatal}
            suspects = range(len(current)) if self._suspects is None else self._suspects(current)
            for i in suspects:
                value = current[i]
                if value and i not in failed:
                    for check in self._checks:
                        if (problem := check(value)) is not None:
                            findings.append(Finding(i, *problem))
                            break
        return _one_error_per_cell(findings), current

    def _coerce(self, current: list[str]) -> list[Finding]:
        """Rewrite opt-in date formats to ISO in place; findings for unreadable dates."""
        assert self._coercion is not None
        findings = []
        for i, value in enumerate(current):
            if value:
                converted = self._coercion.convert(value)
                if isinstance(converted, tuple):
                    findings.append(Finding(i, *converted))
                else:
                    current[i] = converted
        return findings


def _one_error_per_cell(findings: list[Finding]) -> list[Finding]:
    seen: set[int] = set()
    kept: list[Finding] = []
    for finding in findings:
        if finding.row in seen:
            continue
        if finding.fatal:
            seen.add(finding.row)
        kept.append(finding)
    return kept
