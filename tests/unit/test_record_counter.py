"""The early count of a resumable upload's records (RecordCounter): a file fed in pieces,
with the counter's state stored and read back between every two pieces (as an upload's
PATCHes, over gateway replicas, do), counts the records the chunker finds in the whole
file, and refuses a file that is not CSV where the chunker refuses it."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from services.gateway.intake import csv_stream
from services.gateway.intake.csv_stream import (
    ChunkerState,
    CsvChunker,
    CsvInputError,
    RecordCounter,
)
from shared.text_encoding import UTF8, Decision, lookup
from tests.unit.test_csv_stream import TRICKY as TRICKY_RECORDS

SMALL_SAMPLE = 16
CORPUS = sorted((Path(__file__).parents[1] / "corpus").glob("*.*sv"))
TRICKY = TRICKY_RECORDS + b"\r\n,,\r\n"  # and a spreadsheet's empty row: not a record


def chunker(encoding: str | None) -> CsvChunker:
    declared = None if encoding is None else Decision(lookup(encoding) or UTF8, "declared")
    return CsvChunker(1_000, encoding=declared, max_record_chars=1 << 20)


def whole(data: bytes, cuts: list[int], encoding: str | None = None) -> int | str:
    """The data records of the whole file as the import counts them (fed the same pieces,
    so that the encoding is decided on the same sample), or its error code."""
    parser = chunker(encoding)
    chunks = []
    try:
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            chunks += parser.feed(data[start:end])
        chunks += parser.finish()
    except CsvInputError as exc:
        return exc.code
    return sum(len(c.rows) for c in chunks)


def in_pieces(data: bytes, cuts: list[int], encoding: str | None = None) -> int | str:
    """The count after every piece, each fed to a counter rebuilt from the stored state."""
    state: bytes | None = None
    rows = 0
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        previous = None if state is None else msgspec.msgpack.decode(state, type=ChunkerState)
        counter = RecordCounter(chunker(encoding), previous)
        try:
            counted = counter.feed(data[start:end])
        except CsvInputError as exc:
            return exc.code
        assert counted >= rows  # a count never goes back
        rows = counted
        state = msgspec.msgpack.encode(counter.state())
    return rows


def cuts_of(data: bytes, chooser: random.Random, pieces: int) -> list[int]:
    return sorted(chooser.sample(range(1, len(data)), min(pieces, max(0, len(data) - 1))))


@pytest.fixture
def small_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decide encoding and delimiter on the first bytes, so small files are parsed (and
    counted) before their end, as a large file is after 64 KB."""
    monkeypatch.setattr(csv_stream, "SNIFF_BYTES", SMALL_SAMPLE)


@pytest.mark.usefixtures("small_sample")
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_a_file_counted_in_pieces_counts_what_the_import_will(path: Path) -> None:
    data = path.read_bytes()
    chooser = random.Random(path.name)  # noqa: S311 (test data)
    for pieces in (1, 3, 40):
        cuts = cuts_of(data, chooser, pieces)
        expected, counted = whole(data, cuts), in_pieces(data, cuts)
        if len(data) < SMALL_SAMPLE:
            assert counted == 0  # nothing is decided before the sample is whole
        elif isinstance(expected, str):
            # An error the bytes show before the end is the import's own; one only the end
            # shows (a quote never closed) is left to the import.
            assert counted == expected or isinstance(counted, int), (path.name, counted)
        elif isinstance(counted, int):
            # Only the last record may be left uncounted: the counter is never told that
            # the file ends, so a last line without a line break may still go on.
            assert expected - 1 <= counted <= expected, (path.name, cuts)
        else:
            pytest.fail(f"{path.name}: the import reads it, the counter refused it: {counted}")


@pytest.mark.usefixtures("small_sample")
@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "shift_jis", "gb18030"])
def test_multibyte_text_cut_inside_characters_and_quoted_newlines(codec: str) -> None:
    text = TRICKY.decode("utf-8-sig") * 8  # 5 records, then the next copy's header as one
    if codec != "utf-8":
        text = text.replace("☕", "茶").replace("ë", "e")  # in every one of these encodings
    data = text.encode(codec)
    chooser = random.Random(codec)  # noqa: S311 (test data)
    for _ in range(30):
        cuts = cuts_of(data, chooser, 25)
        assert in_pieces(data, cuts, codec) == whole(data, cuts, codec) == 5 * 8 + 7
    every_byte = list(range(1, len(data)))
    assert in_pieces(data, every_byte, codec) == whole(data, every_byte, codec)


def test_a_large_file_is_counted_from_its_first_64_kb_on() -> None:
    data = b"id,name\n" + b"".join(b"%d,name %d\n" % (i, i) for i in range(20_000))
    assert len(data) > 4 * csv_stream.SNIFF_BYTES
    cuts = list(range(10_000, len(data), 10_000))
    assert in_pieces(data[:30_000], cuts[:2]) == 0  # still the sample
    assert in_pieces(data, cuts) == whole(data, cuts) == 20_000


@pytest.mark.usefixtures("small_sample")
def test_the_same_errors_as_the_whole_file_as_soon_as_the_bytes_show_them() -> None:
    rest = b"3,fine\n" * 100
    bad = b'id,name\n1,ok\n2,"bad"x\n' + rest
    cuts = [5, 14, 30, 300]
    assert whole(bad, cuts) == in_pieces(bad, cuts) == "malformed_csv"
    invalid = "id,name\n1,Zoë\n".encode() + b"2,\xff\xfe\n" + rest
    cuts = [3, 9, 15, 300]
    assert whole(invalid, cuts) == in_pieces(invalid, cuts) == "invalid_encoding"
