"""Malicious content scanning under each policy."""

from __future__ import annotations

from services.validator.content import is_formula, scan_text
from shared.rulebook import ContentRules


def test_formulas_but_not_numbers_or_empty_cells() -> None:
    assert [is_formula(v) for v in ("=1+1", "+1 555", "-cmd", "@SUM(A1)", "\tx", "\rx")] == [
        True
    ] * 6
    assert [is_formula(v) for v in ("-12.5", "+3", "-1e5", "", "a=b", "12")] == [False] * 6


def test_each_policy() -> None:
    values = ["fine", "=evil()", "", "<b>bold</b>", "bell\x07"]
    found, _ = scan_text(values, ContentRules())
    assert [(f.row, f.code, f.fatal) for f in found] == [
        (4, "control_character", True),
        (1, "formula", True),
        (3, "markup", False),
    ]
    rules = ContentRules(
        formulas="neutralise", control_characters="neutralise", markup="neutralise"
    )
    found, current = scan_text(values, rules)
    assert not any(f.fatal for f in found)
    assert current == ["fine", "'=evil()", "", "&lt;b&gt;bold&lt;/b&gt;", "bell"]


def test_nul_is_never_merely_flagged_and_long_values_are_truncated_in_order() -> None:
    found, _ = scan_text(["a\x00b"], ContentRules(control_characters="flag"))
    assert [(f.code, f.fatal) for f in found] == [("control_character", True)]
    found, current = scan_text(
        ["=" + "x" * 20],
        ContentRules(max_field_length=5, overlong="neutralise", formulas="neutralise"),
    )
    assert [f.code for f in found] == ["too_long", "formula"]
    assert current == ["'=xxxx"]


def test_bidirectional_overrides_are_control_characters() -> None:
    found, _ = scan_text(["invoice\u202efdp.exe", "tab\tand\nnewline"], ContentRules())
    assert [(f.row, f.code) for f in found] == [(0, "control_character")]
