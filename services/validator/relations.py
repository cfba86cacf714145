"""Checks that need other rows: duplicate keys within the whole file (across chunks) and
against the table, under the import's duplicate policy, and references (foreign keys and
the rule file's required associations) to rows in the table or earlier in the import.

Keys are claimed (claims.py) in file order (chunks of an import are keyed
by the import id, so one validator sees them in order): the first occurrence of a key
wins, and validating a chunk again gives the same answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.validator import repository
from services.validator.chunk import report_value
from services.validator.claims import Claims, KeyClaims
from services.validator.keys import Canon, canon_for, digest, key_digests
from shared.catalog import TableDef, quote_ident
from shared.db import Conn
from shared.error_codes import ErrorCode
from shared.events import DuplicatePolicy, RowError
from shared.rulebook import TableRules, unique_keys


@dataclass(frozen=True)
class KeySpec:
    """A unique key (the table's, or one its rule file declares) whose columns are all in
    the file."""

    key_no: int
    columns: tuple[str, ...]
    typed: tuple[tuple[str, str], ...]  # (column, type to cast input text to)
    positions: tuple[int, ...]
    canons: tuple[Canon, ...]
    lookup_sql: str  # positions of tuples already in the table
    own_rows_sql: str | None  # of those, the rows this import loaded (None: no primary key)
    declared: bool  # only the rule file declares it: the database does not enforce it
    fold: bool  # compared case-insensitively


@dataclass(frozen=True)
class RefSpec:
    """Rows must match a row of `ref_table` (a foreign key or a required association)."""

    columns: tuple[str, ...]
    positions: tuple[int, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    required: bool  # an association: an empty value is an error, not "no reference"
    missing_sql: str  # positions of tuples with no match in ref_table
    own_key: KeySpec | None  # the target's key it references, when it references itself


@dataclass
class Outcome:
    rejected: set[int] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)
    duplicates: set[int] = field(default_factory=set)
    errors: list[RowError] = field(default_factory=list)


def _folded(canon: Canon) -> Canon:
    return lambda value: canon(value).lower()


def key_specs(table: TableDef, rules: TableRules, columns: Sequence[str]) -> list[KeySpec]:
    specs = []
    for key_no, key in enumerate(unique_keys(table, rules)):
        if not all(name in columns for name in key.columns):
            continue  # a key the file does not set (e.g. an identity column)
        cols = [table.column(name) for name in key.columns]
        typed = tuple((c.name, c.cast_sql) for c in cols)
        declared = key_no >= len(table.unique_keys)
        fold = key.case_insensitive
        canons = tuple(canon_for(c) for c in cols)
        specs.append(
            KeySpec(
                key_no=key_no,
                columns=key.columns,
                typed=typed,
                positions=tuple(columns.index(name) for name in key.columns),
                canons=tuple(_folded(c) for c in canons) if fold else canons,
                lookup_sql=repository.declared_key_sql(table.sql_name, typed, fold=fold)
                if declared
                else repository.lookup_sql(table.sql_name, typed, present=True),
                own_rows_sql=repository.loaded_by_import_sql(
                    table.sql_name, typed, table.primary_key, fold=fold
                )
                if table.primary_key
                else None,
                declared=declared,
                fold=fold,
            )
        )
    return specs


def ref_spec(
    table: TableDef,
    columns: Sequence[str],
    keys: Sequence[KeySpec],
    *,
    own: tuple[str, ...],
    ref: TableDef,
    ref_columns: tuple[str, ...],
    required: bool,
) -> RefSpec | None:
    """None when the file does not set the referencing columns."""
    if not all(name in columns for name in own):
        return None
    casts = [table.column(name).cast_sql for name in own]
    own_key = None
    if ref.oid == table.oid:
        own_key = next((k for k in keys if set(k.columns) == set(ref_columns)), None)
    return RefSpec(
        columns=own,
        positions=tuple(columns.index(name) for name in own),
        ref_table=ref.qualified_name,
        ref_columns=ref_columns,
        required=required,
        missing_sql=repository.lookup_sql(
            ref.sql_name, list(zip(ref_columns, casts, strict=True)), present=False
        ),
        own_key=own_key,
    )


def _describe(columns: Sequence[str], values: Sequence[str]) -> str:
    return ", ".join(f"{quote_ident(c)} = {v!r}" for c, v in zip(columns, values, strict=True))


@dataclass(frozen=True, slots=True)
class ChunkRows:
    """A chunk's rows to check (after the cell checks), and their lines in the file."""

    seq: int
    rows: Sequence[Sequence[str]]
    lines: Sequence[int]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One chunk being checked, and what the checks found so far."""

    import_id: uuid.UUID
    seq: int
    rows: Sequence[Sequence[str]]
    lines: Sequence[int]
    policy: DuplicatePolicy
    match_on: tuple[str, ...]
    out: Outcome
    cells: dict[int, list[tuple[str, ...] | None]]  # key number → each row's key values


class RelationCheck:
    def __init__(
        self,
        table: TableDef,
        columns: Sequence[str],
        keys: list[KeySpec],
        refs: list[RefSpec],
        claims: KeyClaims,
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.keys = keys
        self.refs = refs
        self._claims = claims

    async def check(
        self,
        conn: Conn,
        *,
        import_id: uuid.UUID,
        chunks: Sequence[ChunkRows],
        policy: DuplicatePolicy,
        match_on: tuple[str, ...],
    ) -> list[Outcome]:
        """The outcome of each of `chunks` (consecutive chunks of the import, in file
        order): the same as checking them one at a time, with one lookup per key for all."""
        parts = [
            _Chunk(
                import_id,
                chunk.seq,
                chunk.rows,
                chunk.lines,
                policy,
                match_on,
                Outcome(),
                {spec.key_no: self._key_cells(spec, chunk.rows) for spec in self.keys},
            )
            for chunk in chunks
        ]
        await self._in_file(conn, parts)
        await self._in_table(conn, parts)
        for part in parts:
            await self._references(conn, part)
        return [part.out for part in parts]

    @staticmethod
    def _key_cells(spec: KeySpec, rows: Sequence[Sequence[str]]) -> list[tuple[str, ...] | None]:
        """Each row's key values (None where one is empty: NULLs never collide)."""
        if len(spec.positions) == 1:
            (p,) = spec.positions
            return [(row[p],) if row[p] else None for row in rows]
        keyed = [tuple(row[p] for p in spec.positions) for row in rows]
        return [None if "" in values else values for values in keyed]

    @staticmethod
    def _duplicate(chunk: _Chunk, index: int, spec: KeySpec, code: ErrorCode, where: str) -> None:
        out = chunk.out
        out.duplicates.add(index)
        if chunk.policy == "update" and code == "duplicate_in_table" and not spec.declared:
            return  # the loader updates the existing row
        skip = chunk.policy == "skip"
        values = [chunk.rows[index][p] for p in spec.positions]
        message = f"{_describe(spec.columns, values)} {where}"
        if skip:
            out.skipped.add(index)
            message += " (skipped)"
        else:
            out.rejected.add(index)
        out.errors.append(
            RowError(
                line=chunk.lines[index],
                column=",".join(spec.columns),
                code=code,
                message=message,
                value=report_value(",".join(values)),
                severity="warning" if skip else "error",
            )
        )

    async def _in_file(self, conn: Conn, parts: Sequence[_Chunk]) -> None:
        by_no = {spec.key_no: spec for spec in self.keys}
        claims: list[tuple[int, Claims]] = []
        for chunk in parts:
            lines = np.asarray(chunk.lines, np.int64)
            mine: Claims = {}
            for spec in self.keys:
                present, found = key_digests(spec.canons, chunk.cells[spec.key_no])
                # Within the chunk: the first row of each key value claims it.
                _, first, which = np.unique(found, return_index=True, return_inverse=True)
                if len(first) < len(found):
                    earlier = first[which.reshape(-1)]
                    for k in np.flatnonzero(earlier != np.arange(len(found))).tolist():
                        where = f"repeats line {lines[present[earlier[k]]]} of this file"
                        self._duplicate(chunk, present[k], spec, "duplicate_in_file", where)
                    first.sort()
                    claimed = np.asarray(present, np.int64)[first]
                    mine[spec.key_no] = (found[first], lines[claimed])
                else:
                    mine[spec.key_no] = (found, lines[present])
            claims.append((chunk.seq, mine))
        if not parts:
            return
        lost = await self._claims.claim(conn, parts[0].import_id, claims)
        for chunk, taken in zip(parts, lost, strict=True):
            index_of_line = {line: i for i, line in enumerate(chunk.lines)}
            for key_no, line, owner_seq, owner_line in taken:
                if (owner_seq, owner_line) == (chunk.seq, line):
                    continue  # this chunk's own claim: it is being validated again
                where = f"repeats line {owner_line} of this file"
                spec = by_no[key_no]
                self._duplicate(chunk, index_of_line[line], spec, "duplicate_in_file", where)

    async def _in_table(self, conn: Conn, parts: Sequence[_Chunk]) -> None:
        if not parts:
            return
        policy, match_on = parts[0].policy, parts[0].match_on
        extra: tuple[int, ...]
        for spec in self.keys:
            sql, extra = spec.lookup_sql, ()
            if policy == "update" and not spec.declared:
                if set(spec.columns) != set(match_on):
                    continue  # other keys: a conflicting update is refused by the database
            elif policy == "update":
                # A declared key: the row being updated may keep its own value.
                extra = tuple(self.columns.index(name) for name in match_on)
                sql = repository.declared_key_sql(
                    self.table.sql_name,
                    spec.typed,
                    fold=spec.fold,
                    other_than=[(n, self.table.column(n).cast_sql) for n in match_on],
                )
            # The candidates (rows with the whole key, not dropped), column by column.
            places = spec.positions + extra
            picked: list[list[int]] = []
            columns: list[list[str]] = [[] for _ in places]
            for chunk in parts:
                dropped = chunk.out.rejected | chunk.out.skipped
                cells = chunk.cells[spec.key_no]
                mine = [i for i, key in enumerate(cells) if key is not None and i not in dropped]
                picked.append(mine)
                rows = chunk.rows
                for column, p in zip(columns, places, strict=True):
                    column += [rows[i][p] for i in mine]
            hits = await repository.lookup_columns(conn, sql, columns)
            if hits and spec.own_rows_sql is not None:
                # Validated again after it was loaded: its own rows are no duplicates.
                keys = [[column[h] for h in hits] for column in columns[: len(spec.positions)]]
                own = await repository.lookup_columns(
                    conn, spec.own_rows_sql, keys, parts[0].import_id
                )
                loaded = set(own)
                hits = [h for k, h in enumerate(hits) if k not in loaded]
            if not hits:
                continue
            where = f"already exists in {self.table.qualified_name}"
            if spec.fold:
                where += " (ignoring case)"
            candidates = [(c, i) for c, mine in zip(parts, picked, strict=True) for i in mine]
            for hit in hits:
                chunk, index = candidates[hit]
                self._duplicate(chunk, index, spec, "duplicate_in_table", where)

    async def _references(self, conn: Conn, chunk: _Chunk) -> None:
        rows, lines, out = chunk.rows, chunk.lines, chunk.out
        for ref in self.refs:
            candidates: list[int] = []
            for i, row in enumerate(rows):
                if i in out.rejected or i in out.skipped:
                    continue
                values = [row[p] for p in ref.positions]
                if "" not in values:
                    candidates.append(i)
                elif ref.required:
                    self._missing(out, i, lines[i], ref, values, "has no value")
            tuples = [[rows[i][p] for p in ref.positions] for i in candidates]
            missing = [
                candidates[m] for m in await repository.lookup(conn, ref.missing_sql, tuples)
            ]
            if missing and ref.own_key is not None:
                missing = await self._not_in_import(conn, chunk, ref, missing)
            for i in missing:
                values = [rows[i][p] for p in ref.positions]
                self._missing(
                    out,
                    i,
                    lines[i],
                    ref,
                    values,
                    f"matches no row of {ref.ref_table} (in the table or earlier in this import)",
                )

    async def _not_in_import(
        self, conn: Conn, chunk: _Chunk, ref: RefSpec, missing: list[int]
    ) -> list[int]:
        """Those of `missing` that no row of this import (up to this chunk) provides."""
        key = ref.own_key
        assert key is not None
        order = [ref.ref_columns.index(name) for name in key.columns]
        digests = {}
        for i in missing:
            values = [chunk.rows[i][ref.positions[o]] for o in order]
            digests[i] = digest([c(v) for c, v in zip(key.canons, values, strict=True)])
        found = await self._claims.claimed(
            conn, chunk.import_id, key.key_no, list(digests.values()), chunk.seq
        )
        return [i for i in missing if digests[i] not in found]

    @staticmethod
    def _missing(
        out: Outcome, index: int, line: int, ref: RefSpec, values: list[str], what: str
    ) -> None:
        out.rejected.add(index)
        out.errors.append(
            RowError(
                line=line,
                column=",".join(ref.columns),
                code="missing_reference" if "" not in values else "required",
                message=f"{_describe(ref.columns, values)} {what}",
                value=report_value(",".join(values)),
            )
        )
