"""Malicious content scanning of text cells: spreadsheet formulas, control characters,
HTML/script markup and absurdly long values, each under the table's policy
(reject | neutralise | flag).

Each scan first searches the whole column at once (one regex over the joined values), so
clean columns cost no Python-level loop.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import NamedTuple

from shared.error_codes import ErrorCode
from shared.rulebook import ContentRules, Policy

# OWASP CSV injection: a cell starting with one of these may run as a formula.
FORMULA_START = "=+-@\t\r\n"
_FORMULA_ANYWHERE = re.compile(r"\x00[=+\-@\t\r\n]")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# C0 controls except tab/LF/CR, DEL, C1 controls, and the bidirectional overrides used to
# disguise text ("Trojan Source").
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MARKUP = re.compile(r"<[a-zA-Z!/?]|javascript\s*:", re.IGNORECASE)


class Finding(NamedTuple):
    """A problem with the cell of row `row`; `fatal` rejects the row, else it is a warning
    (and `replacement`, when set, is the neutralised value that is loaded instead)."""

    row: int
    code: ErrorCode
    message: str
    fatal: bool = True
    replacement: str | None = None


def _finding(
    index: int, code: ErrorCode, message: str, policy: Policy, neutralised: str, how: str
) -> Finding:
    if policy == "reject":
        return Finding(index, code, message)
    if policy == "flag":
        return Finding(index, code, f"{message} (flagged, loaded as is)", fatal=False)
    return Finding(index, code, f"{message} ({how})", fatal=False, replacement=neutralised)


def is_formula(value: str) -> bool:
    return value != "" and value[0] in FORMULA_START and not _PLAIN_NUMBER.fullmatch(value)


def _overlong(values: Sequence[str], rules: ContentRules) -> list[Finding]:
    limit = rules.max_field_length
    if max(map(len, values), default=0) <= limit:
        return []
    return [
        _finding(
            i,
            "too_long",
            f"{len(value)} characters; at most {limit} allowed",
            rules.overlong,
            value[:limit],
            f"truncated to {limit} characters",
        )
        for i, value in enumerate(values)
        if len(value) > limit
    ]


def _control(values: Sequence[str], rules: ContentRules) -> list[Finding]:
    if _CONTROL.search("".join(values)) is None:
        return []
    found = []
    for i, value in enumerate(values):
        if (hit := _CONTROL.search(value)) is not None:
            policy = rules.control_characters
            if "\x00" in value and policy == "flag":
                policy = "reject"  # PostgreSQL cannot store a NUL in text
            found.append(
                _finding(
                    i,
                    "control_character",
                    f"contains the control character U+{ord(hit.group()):04X}",
                    policy,
                    _CONTROL.sub("", value),
                    "control characters removed",
                )
            )
    return found


def _formulas(values: Sequence[str], rules: ContentRules) -> list[Finding]:
    if _FORMULA_ANYWHERE.search("\x00" + "\x00".join(values)) is None:
        return []
    return [
        _finding(
            i,
            "formula",
            f"starts with {value[0]!r} and would run as a spreadsheet formula",
            rules.formulas,
            "'" + value,
            "prefixed with '",
        )
        for i, value in enumerate(values)
        if is_formula(value)
    ]


def _markup(values: Sequence[str], rules: ContentRules) -> list[Finding]:
    if _MARKUP.search("\x00".join(values)) is None:
        return []
    return [
        _finding(
            i,
            "markup",
            "contains HTML/script markup",
            rules.markup,
            html.escape(value, quote=False),
            "HTML-escaped",
        )
        for i, value in enumerate(values)
        if _MARKUP.search(value) is not None
    ]


SCANS = (_overlong, _control, _formulas, _markup)


def scan_text(values: Sequence[str], rules: ContentRules) -> tuple[list[Finding], list[str]]:
    """Findings for a column of text cells, and the cells after neutralising.

    Scans run in order on the output of the previous one, so a value both too long and
    a formula is truncated, then prefixed. Empty cells are NULL and never match.
    """
    current = list(values)
    found: list[Finding] = []
    for scan in SCANS:
        findings = scan(current, rules)
        for finding in findings:
            if finding.replacement is not None:
                current[finding.row] = finding.replacement
        found += findings
    return found, current
