"""An import's query parameters, read and checked: the options it runs with (mode, chunk
size, duplicate policy, encoding, delimiter, rule file, …); 400 problems name the parameter."""

from __future__ import annotations

from typing import Literal, get_args

import msgspec
from aiohttp import web

from services.gateway.access.guard import principal_of
from services.gateway.intake.csv_stream import delimiter_char
from services.gateway.intake.options import ImportOptions
from services.gateway.params import FLAG, Param, Query, flag, int_param, invalid
from services.gateway.problems import Problem
from services.gateway.tables.lookup import RULES
from shared.catalog import TableDef
from shared.config import DEFAULTS, Settings
from shared.events import DuplicatePolicy, Mode
from shared.rulebook import RuleFileError, update_problem
from shared.text_encoding import Decision, lookup

MAX_AUTO_RETRY = 10  # as the imports table's check says
_CHUNK = {"type": "integer", "minimum": 1, "maximum": DEFAULTS["max_chunk_size"]}
ExtraColumns = Literal["refuse", "ignore"]

# The import's parameters: what `import_options` reads, and what the OpenAPI document says.
PARAMS = {
    p.name: p
    for p in (
        Param(
            name="table",
            schema={"type": "string", "minLength": 1},
            description="`schema.table` or `table`",
            required=True,
        ),
        Param(
            name="chunk_size",
            schema=_CHUNK,
            description="rows per chunk (default 1000; the maximum is TIDEGATE_MAX_CHUNK_SIZE,"
            " 10,000)",
        ),
        Param(
            name="validate_only",
            schema=FLAG,
            description="check everything, load nothing (validate permission)",
        ),
        Param(name="dry_run", schema=FLAG, description="load in transactions that are rolled back"),
        Param(
            name="on_duplicate",
            schema={"type": "string", "enum": list(get_args(DuplicatePolicy))},
            description="policy",
        ),
        Param(
            name="extra_columns",
            schema={"type": "string", "enum": list(get_args(ExtraColumns))},
            description="header names the table does not have: refuse the file (default) or"
            " ignore them",
        ),
        Param(
            name="checkpoint_interval",
            schema=_CHUNK,
            description="the seed's name for chunk_size (wins if both): records committed at once",
        ),
        Param(
            name="auto_retry",
            schema={"type": "integer", "minimum": 1, "maximum": MAX_AUTO_RETRY},
            description="attempts per chunk the database refuses for a passing reason"
            " (TIDEGATE_AUTO_RETRY, 3)",
        ),
        Param(
            name="rollback_on_failure",
            schema=FLAG,
            description="if the import ends `failed` (a whole chunk failed, or not one row could"
            " be loaded), remove every row it loaded; an import that ends"
            " `completed_with_errors` (some rows refused, by validation, the database or a"
            " trigger) keeps the rows it loaded (TIDEGATE_ROLLBACK_ON_FAILURE, true; a"
            " cancelled import is always rolled back)",
        ),
        Param(
            name="atomic",
            schema=FLAG,
            description="all or nothing: the first row refused by validation, the database or a"
            " trigger fails the whole import, and every row it loaded is removed",
        ),
        Param(
            name="backup",
            schema=FLAG,
            description="back the table up before the first chunk is loaded",
        ),
        Param(
            name="encoding",
            schema={"type": "string"},
            description="any text encoding Python knows, by its Python or WHATWG name, e.g."
            " shift_jis, koi8-r, windows-1250 (default: detected; a file the detector cannot"
            " tell is refused with 422 undetermined-encoding and its candidates)",
        ),
        Param(
            name="delimiter",
            schema={"type": "string", "enum": [",", ";", "|", "tab"]},
            description="default: sniffed",
        ),
        Param(
            name="Idempotency-Key",
            schema={"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
            description="a retry with the same key and body returns the same import",
            where="header",
        ),
    )
}


def _mode(query: Query) -> Mode:
    validate_only, dry_run = flag(query, "validate_only"), flag(query, "dry_run")
    if validate_only and dry_run:
        raise invalid("dry_run", "validate_only and dry_run cannot both be true.")
    return "validate_only" if validate_only else "dry_run" if dry_run else "import"


def encoding_of(raw: str, *, from_charset: bool) -> Decision:
    found = lookup(raw)
    if found is not None:
        return Decision(found, "charset" if from_charset else "declared")
    hint = "any text encoding Python knows, by its Python or WHATWG name (e.g. shift_jis, koi8-r)"
    if from_charset:
        raise Problem(
            415,
            "unsupported-charset",
            "Unsupported charset",
            f"charset={raw} is not a text encoding tidegate knows; use {hint}.",
        )
    raise invalid("encoding", f"{raw!r} is not a text encoding tidegate knows; use {hint}.")


def _chunk_size(query: Query, settings: Settings, mode: Mode) -> int:
    """`chunk_size`, or by its seed name `checkpoint_interval` (which wins when both are
    given): the records committed at once, and never loaded again after a crash."""
    # A dry run is one transaction per chunk: by default the whole file (up to the
    # largest chunk) is tried at once, so references between its rows are seen.
    default = settings.max_chunk_size if mode == "dry_run" else settings.default_chunk_size
    size = int_param(query, "chunk_size", default, 1, settings.max_chunk_size)
    return int_param(query, "checkpoint_interval", size, 1, settings.max_chunk_size)


def import_options(
    request: web.Request, settings: Settings, table: TableDef, query: Query | None = None
) -> ImportOptions:
    """The import's options from `query` (the request's own by default)."""
    query = request.query if query is None else query
    mode = _mode(query)
    chunk_size = _chunk_size(query, settings, mode)
    atomic, backup = flag(query, "atomic"), flag(query, "backup")
    for name, value in (("atomic", atomic), ("backup", backup)):
        if value and mode != "import":
            raise invalid(name, f"{name} applies to imports that load, not to a {mode}.")
    delimiter = None
    if "delimiter" in query:
        delimiter = delimiter_char(query["delimiter"])
        if delimiter is None:
            raise invalid("delimiter", "delimiter must be one of , ; | or tab.")
    try:
        rules = request.app[RULES].rules_for(table)
    except RuleFileError as exc:
        raise Problem(
            409, "invalid-rule-file", "The table's rule file is invalid", str(exc)
        ) from None
    policy = rules.options.on_duplicate
    if "on_duplicate" in query:
        try:
            policy = msgspec.convert(query["on_duplicate"], DuplicatePolicy)
        except msgspec.ValidationError:
            raise invalid("on_duplicate", "on_duplicate must be reject, skip or update.") from None
    if policy == "update" and (problem := update_problem(table, rules)) is not None:
        raise invalid("on_duplicate", problem)
    # The key's own limit (an admin's, for a migration), else the gateway's.
    max_records = principal_of(request).max_records_per_import or settings.max_records_per_import
    return ImportOptions(
        chunk_size=min(chunk_size, max_records),
        max_records=max_records,
        mode=mode,
        on_duplicate=policy,
        encoding=encoding_of(query["encoding"], from_charset=False)
        if "encoding" in query
        else None,
        delimiter=delimiter,
        rules=rules,
        auto_retry=int_param(
            query, "auto_retry", settings.auto_retry, *PARAMS["auto_retry"].bounds
        ),
        rollback_on_failure=flag(query, "rollback_on_failure", settings.rollback_on_failure),
        atomic=atomic,
        backup=backup,
        ignore_extra_columns=extra_columns(query) == "ignore",
    )


def extra_columns(query: Query) -> ExtraColumns:
    """What to do with header names the table does not have: refuse the file (default)
    or leave those columns out."""
    value = query.get("extra_columns", "refuse")
    if value not in get_args(ExtraColumns):
        raise invalid("extra_columns", "extra_columns must be refuse or ignore.")
    return "ignore" if value == "ignore" else "refuse"
