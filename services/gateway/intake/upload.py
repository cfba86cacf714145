"""Receiving an import in two steps: read and parse the body, checking the header and
cutting chunks into a spool, with no database connection held (`parse_upload`); then
record the import with its chunks in one short transaction: the chunk store, and a
reference to each in the outbox (`record_import`). Nothing is stored if any step fails.

A file exported by `GET /imports/{id}/failed` ends each row with diagnostic columns
(`DIAGNOSTIC_COLUMNS`); they are recognised by their header names and left out, and for a
retry the parent's line each row came from is recorded (for the parent's reconciliation).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import msgspec

from services.gateway.intake import import_store
from services.gateway.intake.csv_stream import (
    ChunkerState,
    CsvChunker,
    CsvInputError,
    ParsedChunk,
    RecordCounter,
)
from services.gateway.intake.options import ImportOptions, Owner
from services.gateway.metrics import CHUNKS_SUBMITTED, IMPORT_BYTES, ROWS_RECEIVED
from shared import chunk_store, events, operations
from shared.catalog import TableDef, map_header
from shared.chunk_store import StoredChunk
from shared.db import Conn
from shared.text_encoding import UTF8, Decision


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


DIAGNOSTIC_COLUMNS = ("tidegate_line", "tidegate_errors")


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


class ParsedUpload:
    """A file read whole and cut into chunk events, kept in a spool (memory up to
    `SPOOL_MEMORY`, then a temporary file) until `record_import` stores them: the body is
    read and parsed with no database connection held."""

    SPOOL_MEMORY = 4 * 1024 * 1024

    def __init__(self, import_id: uuid.UUID) -> None:
        self.import_id = import_id
        self.columns: tuple[str, ...] = ()
        self.header: list[str] = []
        self.ignored_columns: list[str] = []
        self.encoding = Decision(UTF8, "detected", 1.0)  # an empty file's
        self.delimiter = ","
        self.empty_rows = 0
        self.rows = 0
        self.chunks = 0
        self.bytes = 0
        self.retried: list[tuple[int, int]] = []  # (line, the parent's line)
        self._spool = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_MEMORY)

    def add(self, event: events.ChunkSubmitted) -> None:
        """Spool the event, encoded once: it is stored as it is spooled."""
        data = events.encode(event)
        self._spool.write(len(data).to_bytes(4, "big"))
        self._spool.write(len(event.rows).to_bytes(4, "big"))
        self._spool.write(event.last.to_bytes(1, "big"))
        self._spool.write(data)
        self.chunks += 1

    def stored(self) -> Iterator[StoredChunk]:
        """Every chunk as the chunk store keeps it, in order."""
        self._spool.seek(0)
        seq = 0
        while size := int.from_bytes(self._spool.read(4), "big"):
            rows = int.from_bytes(self._spool.read(4), "big")
            last = bool(self._spool.read(1)[0])
            yield StoredChunk(seq, rows, last, self._spool.read(size))
            seq += 1

    def close(self) -> None:
        self._spool.close()


def chunker_for(table: TableDef, options: ImportOptions, max_record_bytes: int) -> CsvChunker:
    return CsvChunker(
        options.chunk_size,
        encoding=options.encoding,
        delimiter=options.delimiter,
        known_names=[c.name for c in table.columns] + list(options.rules.aliases()),
        max_record_chars=max_record_bytes,
    )


def _map_header(
    header: list[str], table: TableDef, options: ImportOptions
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The header's names as the table's columns, and their positions; or HeaderMismatch."""
    required = [name for name, col in options.rules.columns.items() if col.required]
    return map_header(
        header,
        table,
        aliases=options.rules.aliases(),
        also_required=required,
        ignore_unknown=options.ignore_extra_columns,
    )


class EarlyCheck:
    """The refusals of `parse_upload` that a file's bytes show before its end (bytes that
    are not CSV, a header that does not fit the table, more records than one import may
    hold), applied as the pieces of a file arrive; the state between pieces is `state()`,
    for `resume`. The file is still parsed whole when it is complete."""

    def __init__(
        self,
        table: TableDef,
        options: ImportOptions,
        max_record_bytes: int,
        state: bytes | None = None,
    ) -> None:
        self._table = table
        self._options = options
        self._counter = RecordCounter(
            chunker_for(table, options, max_record_bytes),
            None if state is None else msgspec.msgpack.decode(state, type=ChunkerState),
        )

    def feed(self, data: bytes) -> None:
        had_header = self._counter.header is not None
        rows = self._counter.feed(data)
        header = self._counter.header
        if not had_header and header is not None:
            _map_header(Diagnostics(track=False).header(header), self._table, self._options)
        if rows > self._options.max_records:
            raise TooManyRecords(self._options.max_records)

    def state(self) -> bytes:
        return msgspec.msgpack.encode(self._counter.state())


async def parse_upload(
    *, table: TableDef, body: AsyncIterator[bytes], options: ImportOptions, max_record_bytes: int
) -> ParsedUpload:
    """Read `body` into chunk events; raises CsvInputError, HeaderMismatch or
    TooManyRecords as soon as the file shows it (the rest of the body is then not read)."""
    parsed = ParsedUpload(uuid.uuid4())
    try:
        await _parse_into(parsed, table, body, options, max_record_bytes)
    except BaseException:
        parsed.close()
        raise
    return parsed


async def _parse_into(
    parsed: ParsedUpload,
    table: TableDef,
    body: AsyncIterator[bytes],
    options: ImportOptions,
    max_record_bytes: int,
) -> None:
    chunker = chunker_for(table, options, max_record_bytes)
    diagnostics = Diagnostics(track=options.parent_id is not None)

    kept: tuple[int, ...] = ()  # positions of the header's names the import keeps
    width = 0  # the header's fields (without diagnostics)

    def header_columns(header: list[str]) -> tuple[str, ...]:
        nonlocal kept, width
        header = diagnostics.header(header)
        names, kept = _map_header(header, table, options)
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

    def store(chunk: ParsedChunk, *, last: bool) -> None:
        assert columns is not None
        parsed.add(
            events.ChunkSubmitted(
                import_id=parsed.import_id,
                seq=parsed.chunks,
                table=table.qualified_name,
                columns=columns,
                rows=cut(diagnostics.rows(chunk)),
                first_line=chunk.lines[0] if chunk.lines else 2,
                lines=chunk.lines,
                last=last,
                mode=options.mode,
                on_duplicate=options.on_duplicate,
            )
        )
        parsed.rows += len(chunk.rows)
        if parsed.rows > options.max_records:
            raise TooManyRecords(options.max_records)

    async for block in body:
        parsed.bytes += len(block)
        chunks = chunker.feed(block)
        if columns is None and chunker.header is not None:
            columns = header_columns(chunker.header)
        for chunk in chunks:
            if held is not None:
                store(held, last=False)
            held = chunk
    chunks = chunker.finish()
    if chunker.header is None:
        raise CsvInputError("the file is empty: no header line", code="empty_file")
    if columns is None:
        columns = header_columns(chunker.header)
    for chunk in chunks:
        if held is not None:
            store(held, last=False)
        held = chunk
    store(held or ParsedChunk(), last=True)
    parsed.columns = columns
    parsed.encoding = chunker.encoding or parsed.encoding
    parsed.delimiter = chunker.delimiter or ","
    parsed.header = [chunker.header[i] for i in kept]
    parsed.ignored_columns = [
        name for i, name in enumerate(chunker.header[:width]) if i not in kept
    ]
    parsed.empty_rows = chunker.empty_rows
    parsed.retried = diagnostics.retried


async def record_import(
    conn: Conn,
    parsed: ParsedUpload,
    *,
    table: TableDef,
    options: ImportOptions,
    filename: str | None,
    owner: Owner,
) -> ImportReceived:
    """Store the import with its chunks (and their references in the outbox). Call inside
    a transaction."""
    assert conn.is_in_transaction()
    await chunk_store.store_uploaded(conn, parsed.import_id, parsed.stored())
    record = await import_store.insert_import(
        conn,
        import_id=parsed.import_id,
        table=table.qualified_name,
        columns=parsed.columns,
        options=options,
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        filename=filename,
        owner=owner,
        file_rows=parsed.rows,
        chunks_total=parsed.chunks,
        header=parsed.header,
        ignored_columns=parsed.ignored_columns,
        empty_rows=parsed.empty_rows,
    )
    record = await _recovery_records(conn, record, options, owner, table, parsed.retried)
    IMPORT_BYTES.inc(parsed.bytes)
    ROWS_RECEIVED.inc(parsed.rows)
    CHUNKS_SUBMITTED.inc(parsed.chunks)
    return ImportReceived(
        import_id=parsed.import_id, record=dict(record), rows=parsed.rows, chunks=parsed.chunks
    )


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
        record = await import_store.set_backup(conn, import_id, backup_id)
    if retried:
        await conn.copy_records_to_table(
            "retried_lines",
            schema_name="tidegate",
            columns=["import_id", "line", "parent_line"],
            records=[(import_id, line, parent) for line, parent in retried],
        )
    return record
