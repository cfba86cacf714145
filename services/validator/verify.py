"""verify-data: a table's current rows against the rules an import uses.

The rows are read in one snapshot with a server-side cursor, `BATCH` at a time (memory
stays flat), as the text an import would carry (`to_jsonb(value) #>> '{}'`: ISO dates,
true/false), and every batch goes through the same column rules as a chunk (types,
required values, formats, patterns, ranges, allowed values, malicious content). Then, in
SQL: duplicates on each unique key, rows whose rule-file associations match nothing (the
database does not enforce those), and reconciliation with tidegate's lineage: rows that an
import wrote last and that are gone or changed since.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import structlog

from services.validator.chunk import validate_rows
from services.validator.column import ColumnRule
from services.validator.metrics import VERIFIED_ROWS
from shared.catalog import TableDef, load_table, quote_ident, quote_literal
from shared.db import Conn
from shared.error_codes import FORMAT, REQUIRED, codes_in
from shared.errors import InvalidEvent
from shared.events import VerificationRequested
from shared.field_counts import FieldCount, by_field
from shared.kafka.records import Outgoing
from shared.lineage import CHANGED, written_sql
from shared.rulebook import RuleBook, RuleFileError, TableRules, unique_keys

log = structlog.get_logger(__name__)

BATCH = 5_000
SAMPLE = 20  # offending rows kept per check
CHECKS = ("rules", "duplicates", "associations", "lineage")

_REQUIRED, _FORMAT = frozenset(codes_in(REQUIRED)), frozenset(codes_in(FORMAT))


class Finding(msgspec.Struct, frozen=True):
    check: str
    key: dict[str, Any] | None  # the row's primary key; for a duplicate, the shared value
    column: str | None
    code: str
    message: str
    rows: list[dict[str, Any]] | None = None  # a duplicate's rows, by primary key (first 10)


class TableReport(msgspec.Struct, kw_only=True):
    """The seed's metrics for one table, with counts per check and a sample of rows."""

    table: str
    total_records: int = 0
    failed_records: int = 0
    duplicate_count: int = 0
    missing_required_fields: list[FieldCount] = msgspec.field(default_factory=list)
    invalid_format_fields: list[FieldCount] = msgspec.field(default_factory=list)
    checks: dict[str, int] = msgspec.field(default_factory=dict)
    sample: list[Finding] = msgspec.field(default_factory=list)
    rows_per_second: float = 0.0

    def found(self, check: str, count: int, findings: list[Finding]) -> None:
        self.checks[check] = self.checks.get(check, 0) + count
        room = SAMPLE - sum(f.check == check for f in self.sample)
        self.sample += findings[: max(room, 0)]


class Scope(msgspec.Struct, frozen=True):
    """The rows a verification looks at: the whole table, or one row by its primary key
    (values as text, in the key's order)."""

    key: tuple[str, ...] | None = None

    def where(self, table: TableDef, first: int) -> str:
        """SQL: `t` is the row (true for the whole table); parameters from $first."""
        if self.key is None:
            return "true"
        return " AND ".join(
            f"t.{quote_ident(c)} = {param}"
            for c, param in zip(table.primary_key, table.key_params(first), strict=True)
        )

    def key_match(self, table: TableDef, first: int) -> str:
        """SQL: `key`, a key as lineage records it (a jsonb array of typed values), is the
        row's (true for the whole table)."""
        if self.key is None:
            return "true"
        return f"key = jsonb_build_array({', '.join(table.key_params(first))})"

    @property
    def params(self) -> tuple[str, ...]:
        return self.key or ()


WHOLE = Scope()


def _key(table: TableDef, values: str | None) -> dict[str, Any] | None:
    """The primary key of a row, from its `jsonb_build_array` (None: no primary key)."""
    if values is None:
        return None
    return dict(zip(table.primary_key, msgspec.json.decode(values), strict=True))


async def _no_progress(rows_checked: int) -> None:
    return None


async def check_rows(
    conn: Conn,
    table: TableDef,
    rules: TableRules,
    report: TableReport,
    scope: Scope = WHOLE,
    progress: Callable[[int], Awaitable[None]] = _no_progress,
) -> None:
    """Stream the rows through the column rules (inside the caller's snapshot), telling
    `progress` the rows checked after each batch."""
    column_rules = [ColumnRule(c, rules.column(c.name), rules.content) for c in table.columns]
    cells = ", ".join(f"to_jsonb(t.{quote_ident(c.name)}) #>> '{{}}'" for c in table.columns)
    pk = ", ".join(f"t.{quote_ident(c)}" for c in table.primary_key)
    cells += f", jsonb_build_array({pk})" if pk else ", NULL"  # the row's key, typed
    failed: set[int] = set()
    missing: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    seen = 0
    cursor = await conn.cursor(
        f"SELECT {cells} FROM {table.sql_name} t WHERE {scope.where(table, 1)}", *scope.params
    )
    while batch := await cursor.fetch(BATCH):
        rows = [["" if v is None else v for v in r[:-1]] for r in batch]
        numbers = range(seen + 1, seen + 1 + len(rows))
        result = validate_rows(column_rules, rows, numbers)
        findings = []
        for error in result.errors:
            if error.severity != "error":
                continue
            failed.add(error.line)
            field = error.column or "(row)"
            if error.code in _REQUIRED:
                missing[field] += 1
            elif error.code in _FORMAT:
                invalid[field] += 1
            findings.append(
                Finding(
                    check="rules",
                    key=_key(table, batch[error.line - seen - 1][-1]),
                    column=error.column,
                    code=error.code,
                    message=error.message,
                )
            )
        report.found("rules", len(findings), findings)
        seen += len(rows)
        await progress(seen)
    report.total_records = seen
    report.failed_records = len(failed)
    report.missing_required_fields = by_field(missing)
    report.invalid_format_fields = by_field(invalid)


async def check_keys(
    conn: Conn, table: TableDef, rules: TableRules, report: TableReport, scope: Scope = WHOLE
) -> None:
    """Rows beyond the first with the same value of a unique key, the table's or one its
    rule file declares (case-insensitive ones compared by `lower()`; NULLs never collide)."""
    for key in unique_keys(table, rules):
        cols = [quote_ident(c) for c in key.columns]
        values = ", ".join(f"lower({c})" if key.case_insensitive else c for c in cols)
        of_row = ""  # the whole table, else only the row's value of the key
        if scope.key is not None:
            of_row = f" AND ({values}) IN (SELECT {values} FROM {table.sql_name} t"
            of_row += f" WHERE {scope.where(table, 1)})"
        rows = "NULL::jsonb"
        if table.primary_key:
            pk = ", ".join(f"{quote_literal(c)}, {quote_ident(c)}" for c in table.primary_key)
            order = ", ".join(quote_ident(c) for c in table.primary_key)
            rows = f"to_jsonb((array_agg(jsonb_build_object({pk}) ORDER BY {order}))[1:{SAMPLE}])"
        groups = await conn.fetch(
            f"SELECT jsonb_build_array({values}) AS value, count(*) AS n, {rows} AS rows"
            f" FROM {table.sql_name}"
            f" WHERE ({' AND '.join(f'{c} IS NOT NULL' for c in cols)})"
            f"{of_row}"
            f" GROUP BY {values} HAVING count(*) > 1 ORDER BY count(*) DESC",
            *scope.params,
        )
        extra = sum(g["n"] - 1 for g in groups)
        report.duplicate_count += extra
        shown = ", ".join(key.columns) + (", ignoring case" if key.case_insensitive else "")
        report.found(
            "duplicates",
            extra,
            [
                Finding(
                    check="duplicates",
                    key=dict(zip(key.columns, msgspec.json.decode(g["value"]), strict=True)),
                    column=",".join(key.columns),
                    code="duplicate_in_table",
                    message=f"{g['n']} rows share this value of ({shown})",
                    rows=msgspec.json.decode(g["rows"]) if g["rows"] else None,
                )
                for g in groups[:SAMPLE]
            ],
        )


async def check_associations(
    conn: Conn,
    table: TableDef,
    rules: TableRules,
    allowed: tuple[str, ...],
    report: TableReport,
    scope: Scope = WHOLE,
) -> None:
    """Rows whose rule-file associations match no row of the referenced table."""
    for assoc in rules.associations:
        ref = await load_table(conn, assoc.references, allowed)
        if ref is None:
            continue
        match = " AND ".join(
            f"r.{quote_ident(to)} = t.{quote_ident(own)}"
            for own, to in zip(assoc.columns, assoc.to, strict=True)
        )
        set_ = " AND ".join(f"t.{quote_ident(own)} IS NOT NULL" for own in assoc.columns)
        key = table.primary_key or assoc.columns
        shown = ", ".join(f"t.{quote_ident(c)}" for c in key)
        orphans = await conn.fetch(
            f"SELECT jsonb_build_array({shown}) AS key FROM {table.sql_name} t WHERE {set_}"
            f" AND {scope.where(table, 1)}"
            f" AND NOT EXISTS (SELECT 1 FROM {ref.sql_name} r WHERE {match})",
            *scope.params,
        )
        where = f"{', '.join(assoc.columns)} → {ref.qualified_name}({', '.join(assoc.to)})"
        report.found(
            "associations",
            len(orphans),
            [
                Finding(
                    check="associations",
                    key=dict(zip(key, msgspec.json.decode(o["key"]), strict=True)),
                    column=",".join(assoc.columns),
                    code="missing_reference",
                    message=f"no row matches {where}",
                )
                for o in orphans[:SAMPLE]
            ],
        )


# Lineage of table $1 of imports not rolled back since.
_STILL_WRITTEN = (
    "w.target_table = $1 AND NOT EXISTS (SELECT 1 FROM tidegate.operations o"
    " WHERE o.import_id = w.import_id AND o.kind = 'rollback' AND o.status = 'completed'"
    " AND NOT o.dry_run)"
)


async def check_lineage(
    conn: Conn, table: TableDef, report: TableReport, scope: Scope = WHOLE
) -> None:
    """Rows an import wrote last (not rolled back since) that are gone or changed."""
    if not table.primary_key:
        return
    key_match = " AND ".join(
        f"t.{quote_ident(c)} = (w.key->>{i})::{table.column(c).cast_sql}"
        for i, c in enumerate(table.primary_key)
    )
    rows = await conn.fetch(
        "WITH written AS ("
        " SELECT x.key, x.digest, x.xid, c.loaded_at"
        f" FROM ({written_sql(_STILL_WRITTEN)}) x"
        " JOIN tidegate.imports i ON i.id = x.import_id AND i.status <> 'rolled_back'"
        " JOIN tidegate.chunk_ledger c ON c.import_id = x.import_id AND c.seq = x.seq"
        " WHERE x.key IS NOT NULL),"
        " latest AS (SELECT DISTINCT ON (key) key, digest, xid FROM written"
        f"  WHERE {scope.key_match(table, 2)} ORDER BY key, loaded_at DESC)"
        " SELECT w.key, CASE WHEN t IS NULL THEN 'deleted' ELSE 'changed' END AS now"
        f" FROM latest w LEFT JOIN {table.sql_name} t ON {key_match}"
        f" WHERE t IS NULL OR {CHANGED}",
        table.qualified_name,
        *scope.params,
    )
    report.found(
        "lineage",
        len(rows),
        [
            Finding(
                check="lineage",
                key=dict(zip(table.primary_key, msgspec.json.decode(r["key"]), strict=True)),
                column=None,
                code=f"{r['now']}_since_import",
                message=f"the row an import wrote was {r['now']} since",
            )
            for r in rows[:SAMPLE]
        ],
    )


class Progress:
    """Rows checked of the table in hand, written (at most once a second, beside the
    verification's row, which stays locked until the result) for the CLI's progress bar."""

    EVERY = 1.0

    def __init__(
        self, pool: asyncpg.Pool, verification_id: uuid.UUID, table: str, tables_done: int
    ) -> None:
        self._pool = pool
        self._id = verification_id
        self._table = table
        self._done = tables_done
        self._estimated = 0
        self._written_at = 0.0

    async def start(self, conn: Conn, oid: int | None) -> None:
        """`oid`: the table, whose size the planner's statistics estimate (None: one row)."""
        estimate = (
            1
            if oid is None
            else await conn.fetchval(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1", oid
            )
        )
        self._estimated = int(estimate or 0)
        await self(0, force=True)

    async def __call__(self, rows_checked: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written_at < self.EVERY:
            return
        self._written_at = now
        await self._pool.execute(
            "INSERT INTO tidegate.verification_progress AS p (verification_id, table_name,"
            " tables_done, rows_checked, rows_estimated) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (verification_id) DO UPDATE SET table_name = $2, tables_done = $3,"
            " rows_checked = $4, rows_estimated = greatest($5, $4), updated_at = now()",
            self._id,
            self._table,
            self._done,
            rows_checked,
            max(self._estimated, rows_checked),
        )


class Verifier:
    """verification-requested → every named table checked → the verification's result.

    The verification's row is locked while it runs and its result written in the same
    transaction, so a redelivered command finds it finished and does nothing."""

    def __init__(self, pool: asyncpg.Pool, rulebook: RuleBook, allowed: tuple[str, ...]) -> None:
        self._pool = pool
        self._rulebook = rulebook
        self._allowed = allowed

    async def handle(self, event: VerificationRequested) -> list[Outgoing]:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT tables, row_key, status FROM tidegate.verifications"
                " WHERE id = $1 FOR NO KEY UPDATE",  # progress rows may still refer to it
                event.verification_id,
            )
            if row is None:
                raise InvalidEvent(f"verification {event.verification_id} is not known")
            if row["status"] != "pending":
                return []
            reports, error = [], None
            try:
                key = msgspec.json.decode(row["row_key"]) if row["row_key"] else None
                for done, name in enumerate(row["tables"]):
                    progress = Progress(self._pool, event.verification_id, name, done)
                    reports.append(await self.verify_table(name, key, progress))
            except RuleFileError as exc:
                error = str(exc)
            await conn.execute(
                "UPDATE tidegate.verifications SET status = $2, passed = $3, result = $4,"
                " error = $5, finished_at = now() WHERE id = $1",
                event.verification_id,
                "failed" if error else "completed",
                None if error else all(not any(r.checks.values()) for r in reports),
                msgspec.json.encode(reports).decode(),
                error,
            )
        log.info("verification finished", tables=list(row["tables"]), error=error)
        return []

    async def verify_table(
        self, name: str, key: dict[str, str] | None = None, progress: Progress | None = None
    ) -> TableReport:
        """Every check of one table (or of its row with the primary key `key`), from one
        snapshot."""
        report = TableReport(table=name)
        started = time.perf_counter()
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            table = await load_table(conn, name, self._allowed)
            if table is None:
                report.found("table_missing", 1, [])
                return report
            rules = self._rulebook.rules_for(table)
            report.checks = dict.fromkeys(CHECKS, 0)  # each reported, even with nothing to do
            scope = WHOLE
            if key is not None:
                if set(key) != set(table.primary_key):  # the table changed since
                    report.found("key_mismatch", 1, [])
                    return report
                scope = Scope(tuple(key[c] for c in table.primary_key))
            if progress is not None:
                await progress.start(conn, table.oid if scope.key is None else None)
            await check_rows(conn, table, rules, report, scope, progress or _no_progress)
            await check_keys(conn, table, rules, report, scope)
            await check_associations(conn, table, rules, self._allowed, report, scope)
            await check_lineage(conn, table, report, scope)
        seconds = time.perf_counter() - started
        report.rows_per_second = round(report.total_records / seconds, 1) if seconds else 0.0
        VERIFIED_ROWS.inc(report.total_records)
        return report
