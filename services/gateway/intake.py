"""Receiving an import: stream the body, check the header, cut chunks, and record the import
with its chunk events in one transaction (the outbox). Nothing is stored if any step fails.

A file exported by `GET /imports/{id}/failed` ends each row with diagnostic columns
(`DIAGNOSTIC_COLUMNS`); they are recognised by their header names and left out, and for a
retry the parent's line each row came from is recorded (for the parent's reconciliation).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec

from services.gateway import repository
from services.gateway.csv_stream import CsvChunker, CsvInputError, ParsedChunk
from services.gateway.metrics import CHUNKS_SUBMITTED, IMPORT_BYTES, ROWS_RECEIVED
from shared import events, imports, operations
from shared.catalog import TableDef, map_header
from shared.db import Conn
from shared.rulebook import NO_RULES, TableRules


class ImportReceived(msgspec.Struct, frozen=True):
    import_id: uuid.UUID
    record: dict[str, object]
    rows: int
    chunks: int


class TooManyRecords(Exception):
    """The file has more data rows than one import may hold (found as soon as it is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file has more than {limit} records; at most {limit} per import")
        self.limit = limit


class Owner(msgspec.Struct, frozen=True, kw_only=True):
    """The key (and its team) an import belongs to, and the concurrency slot it holds."""

    key_id: uuid.UUID
    team: str | None
    slot: int


DIAGNOSTIC_COLUMNS = ("tidegate_line", "tidegate_errors")


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to read the file and what to do with it (the request's parameters, with the
    table's rule file filled in)."""

    chunk_size: int
    max_records: int
    mode: events.Mode = "import"
    on_duplicate: events.DuplicatePolicy = "reject"
    encoding: str | None = None  # None: detect
    delimiter: str | None = None  # None: sniff
    rules: TableRules = NO_RULES
    auto_retry: int = 3
    rollback_on_failure: bool = True
    atomic: bool = False
    backup: bool = False  # back the table up before the first chunk is loaded
    parent_id: uuid.UUID | None = None  # the import this one retries
    ignore_extra_columns: bool = False  # leave out header names the table does not have


class Diagnostics:
    """The trailing DIAGNOSTIC_COLUMNS of a re-uploaded failed-rows file: recognised by the
    header, cut from every row, and (`track`) the parent's line of each row noted."""

    WIDTH = len(DIAGNOSTIC_COLUMNS)

    def __init__(self, *, track: bool) -> None:
        self.present = False
        self.retried: list[tuple[int, int]] = []  # (line, the parent's line)
        self._track = track

    def header(self, header: list[str]) -> list[str]:
        if tuple(h.strip().lower() for h in header[-self.WIDTH :]) == DIAGNOSTIC_COLUMNS:
            self.present = True
            return header[: -self.WIDTH]
        return header

    def rows(self, chunk: ParsedChunk) -> list[list[str]]:
        if not self.present:
            return chunk.rows
        width = self.WIDTH
        if self._track:
            self.retried.extend(
                (line, int(row[-width]))
                for line, row in zip(chunk.lines, chunk.rows, strict=True)
                if len(row) >= width and row[-width].isdigit()
            )
        return [row[:-width] if len(row) >= width else row for row in chunk.rows]


async def receive_import(
    conn: Conn,
    *,
    table: TableDef,
    body: AsyncIterator[bytes],
    options: ImportOptions,
    filename: str | None,
    owner: Owner,
) -> ImportReceived:
    """Parse `body` into chunk events stored in the outbox; raises CsvInputError,
    HeaderMismatch or TooManyRecords (the rest of the body is then not read). Call inside
    a transaction, which the caller rolls back on any error."""
    assert conn.is_in_transaction()
    import_id = uuid.uuid4()
    aliases = options.rules.aliases()
    required = [name for name, col in options.rules.columns.items() if col.required]
    chunker = CsvChunker(
        options.chunk_size,
        encoding=options.encoding,
        delimiter=options.delimiter,
        known_names=[c.name for c in table.columns] + list(aliases),
    )

    diagnostics = Diagnostics(track=options.parent_id is not None)

    kept: tuple[int, ...] = ()  # positions of the header's names the import keeps
    width = 0  # the header's fields (without diagnostics)

    def header_columns(header: list[str]) -> tuple[str, ...]:
        nonlocal kept, width
        header = diagnostics.header(header)
        names, kept = map_header(
            header,
            table,
            aliases=aliases,
            also_required=required,
            ignore_unknown=options.ignore_extra_columns,
        )
        width = len(header)
        return names

    def cut(rows: list[list[str]]) -> list[list[str]]:
        """Rows without the ignored columns' fields (a row of the wrong width keeps its
        surplus, so the validator still refuses it)."""
        if len(kept) == width:
            return rows
        return [[row[i] for i in kept if i < len(row)] + row[width:] for row in rows]

    columns: tuple[str, ...] | None = None
    held: ParsedChunk | None = None  # one chunk is held back: only the last one says `last`
    seq = rows = received = 0

    async def store(chunk: ParsedChunk, *, last: bool) -> None:
        nonlocal seq, rows
        assert columns is not None
        event = events.ChunkSubmitted(
            import_id=import_id,
            seq=seq,
            table=table.qualified_name,
            columns=columns,
            rows=cut(diagnostics.rows(chunk)),
            first_line=chunk.lines[0] if chunk.lines else 2,
            lines=chunk.lines,
            last=last,
            mode=options.mode,
            on_duplicate=options.on_duplicate,
        )
        await imports.store_chunk(conn, event, published=False)
        seq += 1
        rows += len(chunk.rows)
        if rows > options.max_records:
            raise TooManyRecords(options.max_records)

    async for block in body:
        received += len(block)
        chunks = chunker.feed(block)
        if columns is None and chunker.header is not None:
            columns = header_columns(chunker.header)
        for chunk in chunks:
            if held is not None:
                await store(held, last=False)
            held = chunk
    chunks = chunker.finish()
    if chunker.header is None:
        raise CsvInputError("the file is empty: no header line", code="empty_file")
    if columns is None:
        columns = header_columns(chunker.header)
    for chunk in chunks:
        if held is not None:
            await store(held, last=False)
        held = chunk
    await store(held or ParsedChunk(), last=True)
    record = await repository.insert_import(
        conn,
        import_id=import_id,
        table=table.qualified_name,
        columns=columns,
        options=options,
        encoding=chunker.encoding or "utf-8",
        delimiter=chunker.delimiter or ",",
        filename=filename,
        owner=owner,
        file_rows=rows,
        chunks_total=seq,
        header=[chunker.header[i] for i in kept],
        ignored_columns=[name for i, name in enumerate(chunker.header[:width]) if i not in kept],
        empty_rows=chunker.empty_rows,
    )
    record = await _recovery_records(conn, record, options, owner, table, diagnostics.retried)
    IMPORT_BYTES.inc(received)
    ROWS_RECEIVED.inc(rows)
    CHUNKS_SUBMITTED.inc(seq)
    return ImportReceived(import_id=import_id, record=dict(record), rows=rows, chunks=seq)


async def _recovery_records(
    conn: Conn,
    record: asyncpg.Record,
    options: ImportOptions,
    owner: Owner,
    table: TableDef,
    retried: list[tuple[int, int]],
) -> asyncpg.Record:
    """The backup the import asked for, and the parent's lines of a retry's rows."""
    import_id: uuid.UUID = record["id"]
    if options.backup:
        backup_id, _ = await operations.request_backup(
            conn,
            tables=[table.qualified_name],
            reason=f"before import {import_id}",
            trigger="pre_import",
            import_id=import_id,
            key_id=owner.key_id,
            team=owner.team,
        )
        record = await repository.set_backup(conn, import_id, backup_id)
    if retried:
        await conn.copy_records_to_table(
            "retried_lines",
            schema_name="tidegate",
            columns=["import_id", "line", "parent_line"],
            records=[(import_id, line, parent) for line, parent in retried],
        )
    return record
