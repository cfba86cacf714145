"""Receiving an import: stream the body, check the header, cut chunks, and record the import
with its chunk events in one transaction (the outbox). Nothing is stored if any step fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec

from services.gateway import repository
from services.gateway.csv_stream import CsvChunker, CsvInputError, ParsedChunk
from services.gateway.metrics import CHUNKS_SUBMITTED, IMPORT_BYTES, ROWS_RECEIVED
from shared import events, imports
from shared.catalog import TableDef, match_header
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

    def header_columns(header: list[str]) -> tuple[str, ...]:
        return match_header(header, table, aliases=aliases, also_required=required)

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
            rows=chunk.rows,
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
    )
    IMPORT_BYTES.inc(received)
    ROWS_RECEIVED.inc(rows)
    CHUNKS_SUBMITTED.inc(seq)
    return ImportReceived(import_id=import_id, record=dict(record), rows=rows, chunks=seq)
