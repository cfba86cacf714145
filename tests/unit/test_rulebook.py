"""Rule files: parsing, fitting them to the table, and the spreadsheet escaping of exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.catalog import TableDef
from shared.rulebook import (
    NO_RULES,
    RuleBook,
    RuleFileError,
    UniqueKey,
    check_against,
    parse_rules,
    unique_keys,
)
from shared.spreadsheet import escape_cell
from tests.unit.columns import column


def table() -> TableDef:
    return TableDef(
        oid=1,
        schema="public",
        name="people",
        columns=(column("id", "int4"), column("email", "text"), column("joined", "date")),
        primary_key=("id",),
        unique_keys=(("id",),),
    )


GOOD = """
format = "tidegate.rules/v1"
[import]
on_duplicate = "skip"
[content]
markup = "reject"
[columns.email]
aliases = ["E-mail"]
format = "email"
[columns.joined]
date_formats = ["%d/%m/%Y"]
[[keys]]
columns = ["email"]
case_insensitive = true
"""


def test_a_good_file_parses_and_fits() -> None:
    rules = parse_rules(GOOD, "good.toml")
    check_against(rules, table(), "good.toml")
    assert rules.options.on_duplicate == "skip"
    assert rules.content.markup == "reject"
    assert rules.content.formulas == "reject"  # the default
    assert rules.aliases() == {"E-mail": "email"}
    assert unique_keys(table(), rules) == (
        UniqueKey(columns=("id",)),
        UniqueKey(columns=("email",), case_insensitive=True),
    )


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('format = "tidegate.rules/v1"\n[columns.email]\nformt = "email"', "formt"),
        ('format = "tidegate.rules/v1"\n[columns.email]\nformat = "phone"', "phone"),
        ('format = "tidegate.rules/v1"\n[content]\nformulas = "ignore"', "ignore"),
        ('format = "tidegate.rules/v1"\n[columns.email\n', "rule file bad.toml"),
    ],
)
def test_files_that_do_not_parse(text: str, fault: str) -> None:
    with pytest.raises(RuleFileError, match=fault):
        parse_rules(text, "bad.toml")


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('format = "tidegate.rules/v2"', "format must be"),
        ('format = "tidegate.rules/v1"\n[columns.nope]\nrequired = true', "no such column"),
        ('format = "tidegate.rules/v1"\n[columns.email]\nmin = 1', "numeric columns only"),
        ('format = "tidegate.rules/v1"\n[columns.id]\ndate_formats = ["%Y"]', "date/timestamp"),
        ('format = "tidegate.rules/v1"\n[columns.joined]\ndate_formats = ["DD/MM"]', "directive"),
        ('format = "tidegate.rules/v1"\n[columns.email]\npattern = "(["', "does not compile"),
        ('format = "tidegate.rules/v1"\n[columns.email]\naliases = ["ID"]', "another column"),
        ('format = "tidegate.rules/v1"\n[import]\nmatch_on = ["x"]', "match_on"),
        ('format = "tidegate.rules/v1"\n[[keys]]\ncolumns = ["x"]', "keys"),
        ('format = "tidegate.rules/v1"\n[[keys]]\ncolumns = []', "keys"),
        (
            'format = "tidegate.rules/v1"\n[[keys]]\ncolumns = ["id"]\ncase_insensitive = true',
            "text columns only",
        ),
    ],
)
def test_files_that_do_not_fit_the_table(text: str, fault: str) -> None:
    with pytest.raises(RuleFileError, match=fault):
        check_against(parse_rules(text, "t.toml"), table(), "t.toml")


def test_the_rulebook_rereads_changed_files(tmp_path: Path) -> None:
    book = RuleBook(tmp_path)
    assert book.rules_for(table()) is NO_RULES
    path = tmp_path / "public.people.toml"
    path.write_text(GOOD)
    assert book.rules_for(table()).options.on_duplicate == "skip"
    path.write_text(GOOD.replace('"skip"', '"update"') + "\n# changed\n")
    assert book.rules_for(table()).options.on_duplicate == "update"


def test_spreadsheet_escaping() -> None:
    assert [escape_cell(v) for v in ("=1+1", "+x", "-cmd", "@A1", "\tx", "-12.5", "ok", "")] == [
        "'=1+1",
        "'+x",
        "'-cmd",
        "'@A1",
        "'\tx",
        "-12.5",
        "ok",
        "",
    ]
