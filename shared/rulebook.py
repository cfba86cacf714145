"""Per-table rule files: what a table's SQL definition cannot say (docs/rules.md).

A rule file is TOML named `<schema>.<table>.toml` in `TIDEGATE_RULES_DIR`. Its format is
versioned by its `format` key; unknown keys are errors, so a typo never passes silently.
Files are re-read when they change; a file that does not parse or does not fit its table
is a `RuleFileError`, which stops imports into that table with a clear message rather than
importing with fewer rules than intended.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec

from shared.catalog import TEXT_TYPES, TableDef

FORMAT = "tidegate.rules/v1"

Policy = Literal["reject", "neutralise", "flag"]
DuplicatePolicy = Literal["reject", "skip", "update"]
Format = Literal["email", "url"]


class RuleFileError(Exception):
    """A rule file that cannot be used; the message names the file and the fault."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ColumnRules(_Strict, frozen=True):
    aliases: tuple[str, ...] = ()
    required: bool = False
    format: Format | None = None
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    date_formats: tuple[str, ...] = ()


class ContentRules(_Strict, frozen=True):
    formulas: Policy = "reject"
    control_characters: Policy = "reject"
    markup: Policy = "flag"
    overlong: Policy = "reject"
    max_field_length: int = msgspec.field(default=65_536)


class ImportRules(_Strict, frozen=True):
    on_duplicate: DuplicatePolicy = "reject"
    match_on: tuple[str, ...] = ()


class Association(_Strict, frozen=True):
    columns: tuple[str, ...]
    references: str
    to: tuple[str, ...]


class UniqueKey(_Strict, frozen=True):
    """Values of `columns` that no two rows may share; `case_insensitive` compares text
    columns by `lower()` (PostgreSQL's, as the table's collation has it)."""

    columns: tuple[str, ...]
    case_insensitive: bool = False


class TableRules(_Strict, frozen=True):
    format: str
    columns: dict[str, ColumnRules] = msgspec.field(default_factory=dict)
    content: ContentRules = msgspec.field(default_factory=ContentRules)
    associations: tuple[Association, ...] = ()
    keys: tuple[UniqueKey, ...] = ()
    # `import` is a Python keyword: the TOML table [import] is read into `options`.
    options: ImportRules = msgspec.field(default_factory=ImportRules, name="import")

    def column(self, name: str) -> ColumnRules:
        return self.columns.get(name, _NO_RULES)

    def aliases(self) -> dict[str, str]:
        """alias → column name."""
        return {alias: name for name, rules in self.columns.items() for alias in rules.aliases}


_NO_RULES = ColumnRules()
NO_RULES = TableRules(format=FORMAT)


NUMBER_TYPES = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8"})


def _column_faults(name: str, col: ColumnRules, table: TableDef) -> list[str]:
    faults = []
    names = {c.name for c in table.columns}
    type_name = table.column(name).type_name
    if (col.min is not None or col.max is not None) and type_name not in NUMBER_TYPES:
        faults.append("min/max apply to numeric columns only")
    if col.date_formats and type_name not in ("date", "timestamp", "timestamptz"):
        faults.append("date_formats apply to date/timestamp columns only")
    sample = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    for fmt in col.date_formats:
        if "%" not in fmt:
            faults.append(f"date format {fmt!r} has no % directive")
            continue
        try:
            datetime.strptime(sample.strftime(fmt), fmt)  # noqa: DTZ007
        except ValueError as exc:
            faults.append(f"date format {fmt!r}: {exc}")
    if col.pattern is not None:
        try:
            re.compile(col.pattern)
        except re.error as exc:
            faults.append(f"pattern does not compile: {exc}")
    others = {n.casefold() for n in names - {name}}
    faults += [
        f"alias {a!r} is another column's name" for a in col.aliases if a.casefold() in others
    ]
    return [f"[columns.{name}]: {fault}" for fault in faults]


def check_against(rules: TableRules, table: TableDef, source: str) -> None:
    """Raise RuleFileError unless every rule fits the table's definition."""
    names = {c.name for c in table.columns}
    faults: list[str] = []
    if rules.format != FORMAT:
        faults.append(f"format must be {FORMAT!r}, not {rules.format!r}")
    for name, col in rules.columns.items():
        if name in names:
            faults += _column_faults(name, col, table)
        else:
            faults.append(f"[columns.{name}]: the table has no such column")
    for i, assoc in enumerate(rules.associations):
        if not assoc.columns or len(assoc.columns) != len(assoc.to) or set(assoc.columns) - names:
            faults.append(
                f"[[associations]] #{i + 1}: columns must be columns of the table, as many as `to`"
            )
    for i, key in enumerate(rules.keys):
        if not key.columns or set(key.columns) - names:
            faults.append(f"[[keys]] #{i + 1}: columns must be columns of the table")
        elif key.case_insensitive and any(
            table.column(c).type_name not in TEXT_TYPES for c in key.columns
        ):
            faults.append(f"[[keys]] #{i + 1}: case_insensitive applies to text columns only")
    faults += [
        f"[import] match_on: the table has no column {name!r}"
        for name in rules.options.match_on
        if name not in names
    ]
    if rules.content.max_field_length < 1:
        faults.append("[content] max_field_length must be positive")
    if faults:
        raise RuleFileError(f"rule file {source}: " + "; ".join(faults))


def unique_keys(table: TableDef, rules: TableRules) -> tuple[UniqueKey, ...]:
    """The keys duplicates are checked on: the table's primary key and UNIQUE constraints
    (exact), then the rule file's. A key's position is its stable number (`key_no`)."""
    return tuple(UniqueKey(columns=key) for key in table.unique_keys) + rules.keys


def match_key(table: TableDef, rules: TableRules) -> tuple[str, ...]:
    """The key `on_duplicate=update` matches rows on: the rule file's, else the primary key."""
    return rules.options.match_on or table.primary_key


def update_problem(table: TableDef, rules: TableRules) -> str | None:
    """Why `on_duplicate=update` cannot work for this table, if it cannot."""
    key = match_key(table, rules)
    if key and any(set(key) == set(unique) for unique in table.unique_keys):
        return None
    return (
        "on_duplicate=update needs a primary key or unique constraint to match rows on;"
        f" {table.qualified_name} has none on {list(key)}"
    )


def parse_rules(text: str, source: str) -> TableRules:
    try:
        raw = tomllib.loads(text)
        return msgspec.convert(raw, TableRules)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise RuleFileError(f"rule file {source}: {exc}") from None


class RuleBook:
    """The rule files of a directory, re-read when their size or mtime changes."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._cache: dict[str, tuple[tuple[int, int], TableDef, TableRules]] = {}

    def path_for(self, table: TableDef) -> Path:
        return self._dir / f"{table.qualified_name}.toml"

    def tables(self) -> list[str]:
        """The `schema.table` names that have a rule file."""
        return sorted(path.stem for path in self._dir.glob("*.toml"))

    def rules_for(self, table: TableDef) -> TableRules:
        """The table's rules (NO_RULES without a file); raises RuleFileError."""
        path = self.path_for(table)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return NO_RULES
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(table.qualified_name)
        if cached is not None and cached[:2] == (stamp, table):
            return cached[2]
        rules = parse_rules(path.read_text(encoding="utf-8"), str(path))
        check_against(rules, table, str(path))
        self._cache[table.qualified_name] = (stamp, table, rules)
        return rules
