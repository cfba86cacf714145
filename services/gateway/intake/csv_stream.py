"""Incremental CSV parsing: bytes in, chunks of records (with their file line numbers) out.

Memory stays bounded by one block plus one unfinished record, and parsing linear: the text
after the last complete record is carried over to the next block; while it is inside a
quoted field it is parsed again only once a block brings a quote that may close the field,
and no record may be longer than `max_record_chars` (refused as `field_too_long`, naming
its line). `csv.reader` in strict mode decides
where a record ends, so quoted fields with embedded newlines, doubled quotes, LF/CRLF/CR
line endings and stray quotes in unquoted fields are all handled as the csv module does.

The encoding and the delimiter are taken as given or decided from the first
`SNIFF_BYTES` of the file (see shared/text_encoding.py and `sniff_delimiter`); the decision is
reported with the import, never made silently.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Collection
from dataclasses import dataclass, field

import msgspec

from shared.text_encoding import (
    Decision,
    EncodingUndetermined,
    detect,
    first_bad_utf8,
)

# A field may be large (a 5 MB text cell is legal), up to the record limit, which each
# chunker checks itself; the csv module's own limit only needs to be no smaller.
csv.field_size_limit(1 << 30)
DEFAULT_MAX_RECORD = 8 * 1024 * 1024

SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")


def delimiter_char(raw: str) -> str | None:
    """`,` `;` `|` or a tab (also spelled `tab` or `\\t`); None if not accepted."""
    value = {"tab": "\t", "\\t": "\t"}.get(raw.lower(), raw)
    return value if value in DELIMITERS else None


class CsvInputError(Exception):
    """The body cannot be read as CSV. `line`/`column` are 1-based when known; `candidates`
    are the encodings an undetermined file may be in."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        line: int | None = None,
        column: int | None = None,
        byte_offset: int | None = None,
        candidates: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.line = line
        self.column = column
        self.byte_offset = byte_offset
        self.candidates = candidates


class ChunkerState(msgspec.Struct, frozen=True, kw_only=True):
    """Where a CsvChunker is in a file, small enough to keep between requests: what was
    decided, and the bytes and text not parsed yet (the first SNIFF_BYTES while nothing is
    decided, then at most one unfinished record)."""

    encoding: Decision | None
    delimiter: str | None
    delimiter_detected: bool
    header: list[str] | None
    sample: bytes
    decoder: tuple[bytes, int] | None  # the incremental decoder's own state
    carry: str
    partial: str
    next_line: int
    bytes_in: int
    empty_rows: int
    records: int


@dataclass
class ParsedChunk:
    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _line_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def sniff_delimiter(text: str, *, final: bool, known_names: Collection[str] = ()) -> str:
    """The delimiter that makes the header name the most known columns, then gives every
    sampled record the header's width, then the most fields; comma on a tie."""
    lines = io.StringIO(text, newline="").readlines()
    if lines and not final and not lines[-1].endswith(("\n", "\r")):
        lines.pop()  # cut mid-line by the sample's end
    lines = [line for line in lines[:50] if line.strip()]
    if not lines:
        return ","
    known = {n.strip().casefold() for n in known_names}
    best, best_score = ",", (-1, False, 0)
    for candidate in DELIMITERS:
        try:
            records = [r for r in csv.reader(lines, delimiter=candidate) if r]
        except csv.Error:
            continue
        width = len(records[0]) if records else 0
        score = (
            sum(name.strip().casefold() in known for name in records[0]) if records else 0,
            width > 1 and all(len(r) == width for r in records[1:-1]),
            width,
        )
        if score > best_score:
            best, best_score = candidate, score
    return best


def position_error(
    before: str, offset: int, byte: int, what: str, *, first_line: int = 1
) -> CsvInputError:
    """A byte that cannot be decoded, after the text `before` (from line `first_line`)."""
    line = first_line + _line_breaks(before)
    column = len(before) - max(before.rfind("\n"), before.rfind("\r"))
    return CsvInputError(
        f"the file {what}: byte 0x{byte:02x} at byte offset {offset} "
        f"(line {line}, column {column}) cannot be decoded",
        code="invalid_encoding",
        line=line,
        column=column,
        byte_offset=offset,
    )


def decide_encoding(sample: bytes, *, final: bool) -> Decision:
    """The encoding of a file that starts with `sample` (all of it when `final`), or a
    CsvInputError: undetermined (with the candidates), or not text where it says."""
    try:
        decided = detect(sample, final=final)
    except EncodingUndetermined as exc:
        raise CsvInputError(
            f"{exc}; pass ?encoding= to name it",
            code="undetermined_encoding",
            candidates=exc.candidates,
        ) from None
    if decided is None:
        bad = first_bad_utf8(sample) or 0
        raise position_error(
            sample[:bad].decode("utf-8", "replace"),
            bad,
            sample[bad],
            "is not text in any encoding tidegate can tell (pass ?encoding= to name it)"
            if sample[:bad].isascii()
            else "is not valid utf-8",
        )
    return decided


class CsvChunker:
    """Feed raw bytes with `feed`, then call `finish`; both return full chunks.

    The first record is the header (`header`); it is not part of any chunk. Blank lines
    are skipped. `encoding` is a decided encoding (declared), or None to detect;
    `delimiter` a character, or None to detect;
    `known_names` (the table's columns and aliases) help choose the delimiter.
    """

    def __init__(
        self,
        chunk_size: int,
        *,
        encoding: Decision | None = None,
        delimiter: str | None = None,
        known_names: Collection[str] = (),
        max_record_chars: int = DEFAULT_MAX_RECORD,
        keep_rows: bool = True,
    ) -> None:
        self.chunk_size = chunk_size
        self.keep_rows = keep_rows  # False: records are counted, and no chunk is made
        self.records = 0  # data records read
        self.header: list[str] | None = None
        self.encoding = encoding
        self.delimiter = delimiter
        self.delimiter_detected = delimiter is None
        self._known = known_names
        self._sample = b""
        self._decoder: codecs.IncrementalDecoder | None = None
        self._carry: list[str] = []  # text of a record not finished yet (in a quoted field)
        self._carried = 0  # its length
        self._max_record = max_record_chars
        self._partial = ""  # text after the last line break (its line is not finished)
        self._next_line = 1  # file line number of the first carried line
        self._bytes_in = 0
        self._current = ParsedChunk()
        self.empty_rows = 0  # records whose every field is empty (",,,"): passed over

    def feed(self, data: bytes) -> list[ParsedChunk]:
        if self._decoder is None:
            self._sample += data
            if len(self._sample) < SNIFF_BYTES:
                return []
            data, self._sample = self._sample, b""
            self._start(data, final=False)
        text = self._decode(data, final=False)
        return self._parse(text, final=False)

    def finish(self) -> list[ParsedChunk]:
        """Parse what is left; the last, possibly short, chunk is included."""
        data = b""
        if self._decoder is None:
            data, self._sample = self._sample, b""
            self._start(data, final=True)
        text = self._decode(data, final=True)
        chunks = self._parse(text, final=True)
        if self._current.rows:
            chunks.append(self._current)
            self._current = ParsedChunk()
        return chunks

    def snapshot(self) -> ChunkerState:
        """Where the parse is, between two `feed`s with no chunk being filled (a chunker
        that does not keep rows): `restore` on a new chunker goes on from here."""
        assert not self._current.rows, "a chunk is being filled"
        return ChunkerState(
            encoding=self.encoding,
            delimiter=self.delimiter,
            delimiter_detected=self.delimiter_detected,
            header=self.header,
            sample=self._sample,
            decoder=None if self._decoder is None else self._decoder.getstate(),
            carry="".join(self._carry),
            partial=self._partial,
            next_line=self._next_line,
            bytes_in=self._bytes_in,
            empty_rows=self.empty_rows,
            records=self.records,
        )

    def restore(self, state: ChunkerState) -> None:
        self.encoding, self.delimiter = state.encoding, state.delimiter
        self.delimiter_detected = state.delimiter_detected
        self.header = state.header
        self._sample = state.sample
        if state.decoder is not None:
            assert state.encoding is not None
            codec = state.encoding.encoding.codec
            self._decoder = codecs.getincrementaldecoder(codec)("strict")
            self._decoder.setstate(state.decoder)
        self._carry = [state.carry] if state.carry else []
        self._carried = len(state.carry)
        self._partial = state.partial
        self._next_line = state.next_line
        self._bytes_in = state.bytes_in
        self.empty_rows = state.empty_rows
        self.records = state.records

    def _start(self, sample: bytes, *, final: bool) -> None:
        """Decide the encoding and delimiter from the first bytes of the file."""
        if self.encoding is None:
            self.encoding = decide_encoding(sample, final=final)
        codec = self.encoding.encoding.codec
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        if self.delimiter is None:
            try:
                text = codecs.decode(sample[: SNIFF_BYTES + 4], codec, "ignore")
            except UnicodeError:  # e.g. a truncated UTF-16 sample; decoding reports it
                text = ""
            self.delimiter = sniff_delimiter(text, final=final, known_names=self._known)

    def _decode(self, data: bytes, *, final: bool) -> str:
        assert self._decoder is not None
        held = len(self._decoder.getstate()[0])
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            offset = self._bytes_in - held + exc.start
            prefix = bytes(exc.object[: exc.start]).decode(exc.encoding, "replace")
            raise self._position_error(
                "".join(self._carry) + self._partial + prefix,
                offset,
                exc.object[exc.start],
                f"is not valid {self.encoding.encoding.name if self.encoding else 'text'}",
            ) from None
        self._bytes_in += len(data)
        return text

    def _position_error(self, before: str, offset: int, byte: int, what: str) -> CsvInputError:
        return position_error(before, offset, byte, what, first_line=self._next_line)

    def _record_too_long(self) -> CsvInputError:
        return CsvInputError(
            f"the record starting at line {self._next_line} is longer than "
            f"{self._max_record} characters (is a quoted field left open?)",
            code="field_too_long",
            line=self._next_line,
        )

    def _parse(self, text: str, *, final: bool) -> list[ParsedChunk]:
        text = self._partial + text
        self._partial = ""
        if not final:
            # Hold back the text after the last line break, and a line ending in a lone CR
            # (its LF may be the first byte of the next block).
            end = len(text) - 1 if text.endswith("\r") else len(text)
            cut = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
            text, self._partial = text[:cut], text[cut:]
        if self._carry:
            self._carried += len(text)
            if self._carried + len(self._partial) > self._max_record:
                raise self._record_too_long()
            # The carried record is inside a quoted field: it can end only after a quote
            # that closes the field (one not doubled), so without one, nothing is parsed
            # again and the text is only kept. This keeps parsing linear.
            if not final and '"' not in text.replace('""', ""):
                self._carry.append(text)
                return []
            text = "".join(self._carry) + text
            self._carry = []
        elif len(self._partial) > self._max_record:
            raise self._record_too_long()
        return self._records(text, final=final)

    def _records(self, text: str, *, final: bool) -> list[ParsedChunk]:
        chunks: list[ParsedChunk] = []
        source = io.StringIO(text, newline="")
        reader = csv.reader(source, strict=True, delimiter=self.delimiter or ",")
        consumed = 0  # lines of the records read
        offset = 0  # characters of the records read
        try:
            for record in reader:
                start = self._next_line + consumed
                consumed = reader.line_num
                began, offset = offset, source.tell()
                if offset - began > self._max_record:
                    self._next_line = start
                    raise self._record_too_long()
                if not record:
                    continue  # blank line
                if len(record) > 1 and not any(record):
                    self.empty_rows += 1  # a spreadsheet's empty row: like a blank line
                    continue
                if self.header is None:
                    self.header = record
                    continue
                self.records += 1
                if not self.keep_rows:
                    continue
                self._current.rows.append(record)
                self._current.lines.append(start)
                if len(self._current.rows) >= self.chunk_size:
                    chunks.append(self._current)
                    self._current = ParsedChunk()
        except csv.Error as exc:
            line = self._next_line + consumed
            if final or source.tell() < len(text):
                raise CsvInputError(
                    f"malformed CSV at line {line}: {exc}", code="malformed_csv", line=line
                ) from None
            # The input ran out inside a quoted field: the record continues in the next block.
            self._carry = [text[offset:]]
            self._carried = len(text) - offset
            if self._carried > self._max_record:
                self._next_line = line
                raise self._record_too_long() from None
        self._next_line += consumed
        return chunks


class RecordCounter:
    """A file's data records counted as its bytes arrive, by the chunker's own parsing (so
    the count is the one its import will have; no rows are kept), and resumable from
    `state()`: a file sent in pieces, over several requests and gateway replicas, is
    counted once. Raises what the chunker raises (CsvInputError) as soon as the bytes show
    it."""

    def __init__(self, chunker: CsvChunker, state: ChunkerState | None = None) -> None:
        chunker.keep_rows = False
        self._chunker = chunker
        if state is not None:
            chunker.restore(state)

    @property
    def header(self) -> list[str] | None:
        return self._chunker.header

    def feed(self, data: bytes) -> int:
        """The data records counted so far, `data` included."""
        self._chunker.feed(data)
        return self._chunker.records

    def state(self) -> ChunkerState:
        return self._chunker.snapshot()
