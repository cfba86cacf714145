"""Incremental CSV parsing: bytes in, chunks of records (with their file line numbers) out.

Memory stays bounded by one block plus one unfinished record: the text after the last
complete record is carried over to the next block. `csv.reader` in strict mode decides
where a record ends, so quoted fields with embedded newlines, doubled quotes, CRLF and
stray quotes in unquoted fields are all handled as the csv module does.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field

# A single field may be large (a 5 MB text cell is legal); the file size limit bounds it.
csv.field_size_limit(128 * 1024 * 1024)


class CsvInputError(Exception):
    """The body cannot be read as CSV. `line`/`column` are 1-based when known."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        line: int | None = None,
        column: int | None = None,
        byte_offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.line = line
        self.column = column
        self.byte_offset = byte_offset


@dataclass
class ParsedChunk:
    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


class CsvChunker:
    """Feed raw bytes with `feed`, then call `finish`; both return full chunks.

    The first record is the header (`header`); it is not part of any chunk. Blank lines
    are skipped.
    """

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.header: list[str] | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self._carry: list[str] = []  # complete lines of a record that is not finished yet
        self._partial = ""  # text after the last line break (its line is not finished)
        self._next_line = 1  # file line number of the first carried line
        self._bytes_in = 0
        self._current = ParsedChunk()

    def feed(self, data: bytes) -> list[ParsedChunk]:
        text = self._decode(data, final=False)
        return self._parse(text, final=False)

    def finish(self) -> list[ParsedChunk]:
        """Parse what is left; the last, possibly short, chunk is included."""
        text = self._decode(b"", final=True)
        chunks = self._parse(text, final=True)
        if self._current.rows:
            chunks.append(self._current)
            self._current = ParsedChunk()
        return chunks

    def _decode(self, data: bytes, *, final: bool) -> str:
        held = len(self._decoder.getstate()[0])
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc, held) from None
        self._bytes_in += len(data)
        return text

    def _decode_error(self, exc: UnicodeDecodeError, held: int) -> CsvInputError:
        offset = self._bytes_in - held + exc.start
        before = (
            "".join(self._carry)
            + self._partial
            + bytes(exc.object[: exc.start]).decode("utf-8", "replace")
        )
        line = self._next_line + before.count("\n")
        column = len(before) - (before.rfind("\n") + 1) + 1
        return CsvInputError(
            f"the file is not valid UTF-8: byte 0x{exc.object[exc.start]:02x} at byte offset "
            f"{offset} (line {line}, column {column}) cannot be decoded",
            code="invalid_encoding",
            line=line,
            column=column,
            byte_offset=offset,
        )

    def _parse(self, text: str, *, final: bool) -> list[ParsedChunk]:
        new_lines = io.StringIO(self._partial + text, newline="").readlines()
        self._partial = ""
        # Unless this is the end, hold back a line without its break, and one ending in a
        # lone CR (its LF may be the first byte of the next block).
        if (
            not final
            and new_lines
            and (not new_lines[-1].endswith(("\n", "\r")) or new_lines[-1].endswith("\r"))
        ):
            self._partial = new_lines.pop()
        lines = self._carry + new_lines
        self._carry = []
        chunks: list[ParsedChunk] = []
        reader = csv.reader(lines, strict=True)
        consumed = 0
        try:
            for record in reader:
                start = self._next_line + consumed
                consumed = reader.line_num
                if not record:
                    continue  # blank line
                if self.header is None:
                    self.header = record
                    continue
                self._current.rows.append(record)
                self._current.lines.append(start)
                if len(self._current.rows) >= self.chunk_size:
                    chunks.append(self._current)
                    self._current = ParsedChunk()
        except csv.Error as exc:
            if final or reader.line_num < len(lines):
                raise CsvInputError(
                    f"malformed CSV at line {self._next_line + consumed}: {exc}",
                    code="malformed_csv",
                    line=self._next_line + consumed,
                ) from None
            # The input ran out inside a quoted field: the record continues in the next block.
            self._carry = lines[consumed:]
        self._next_line += consumed
        return chunks
