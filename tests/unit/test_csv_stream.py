"""The incremental CSV parser: records, line numbers, chunking, and errors."""

from __future__ import annotations

import csv
import io

import pytest

from services.gateway.intake.csv_stream import CsvChunker, CsvInputError, ParsedChunk
from shared.text_encoding import Decision, lookup


def parse(
    data: bytes,
    chunk_size: int = 1000,
    block: int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> tuple[list[str] | None, list[ParsedChunk]]:
    declared = None
    if encoding is not None:
        found = lookup(encoding)
        assert found is not None
        declared = Decision(found, "declared")
    chunker = CsvChunker(chunk_size, encoding=declared, delimiter=delimiter)
    chunks: list[ParsedChunk] = []
    step = block or max(len(data), 1)
    for start in range(0, len(data), step):
        chunks += chunker.feed(data[start : start + step])
    chunks += chunker.finish()
    return chunker.header, chunks


def flat(chunks: list[ParsedChunk]) -> tuple[list[list[str]], list[int]]:
    return [r for c in chunks for r in c.rows], [n for c in chunks for n in c.lines]


TRICKY = (
    "\ufeffid,name,notes\r\n"
    '1,"Doe, Jane","she said ""hi"""\r\n'
    '2,Zoë,"two\r\nlines"\r\n'
    "\r\n"
    '3,"李 ☕","three\nmore\nlines"\r\n'
    '4,5" screen,plain\r\n'
    "5,last,no newline at end"
).encode()


def test_header_rows_and_line_numbers() -> None:
    header, chunks = parse(TRICKY)
    assert header == ["id", "name", "notes"]
    rows, lines = flat(chunks)
    assert rows == [
        ["1", "Doe, Jane", 'she said "hi"'],
        ["2", "Zoë", "two\r\nlines"],
        ["3", "李 ☕", "three\nmore\nlines"],
        ["4", '5" screen', "plain"],
        ["5", "last", "no newline at end"],
    ]
    # Records start on these file lines (blank line 5 skipped; record 3 spans 3 lines).
    assert lines == [2, 3, 6, 9, 10]


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 16, 64])
def test_any_block_split_gives_the_same_records(block: int) -> None:
    assert parse(TRICKY, block=block) == parse(TRICKY)


def test_chunks_are_cut_at_chunk_size() -> None:
    data = "a,b\n" + "".join(f"{i},x\n" for i in range(10))
    _, chunks = parse(data.encode(), chunk_size=4, block=3)
    assert [len(c.rows) for c in chunks] == [4, 4, 2]
    assert chunks[1].rows[0] == ["4", "x"]
    assert chunks[2].lines == [10, 11]


def test_matches_the_csv_module_on_generated_data() -> None:
    from tidegate.sample_data import write_csv  # noqa: PLC0415

    out = io.StringIO(newline="")
    write_csv(out, 500)
    text = out.getvalue()
    expected = list(csv.reader(io.StringIO(text, newline="")))
    header, chunks = parse(text.encode(), chunk_size=100, block=997)
    assert [header, *flat(chunks)[0]] == expected


def test_crlf_split_across_blocks_counts_one_line() -> None:
    data = b"a,b\r\n1,2\r\n3,4\r\n"
    for block in range(1, len(data)):
        assert flat(parse(data, block=block)[1])[1] == [2, 3]


def test_invalid_utf8_names_offset_line_and_column() -> None:
    data = b"id,name\n1,ok\n2,caf" + b"\xe9" + b"\n"
    for block in (1, 4, 100):
        with pytest.raises(CsvInputError) as caught:
            parse(data, block=block, encoding="utf-8")
        assert caught.value.code == "invalid_encoding"
        assert caught.value.byte_offset == 18
        assert (caught.value.line, caught.value.column) == (3, 6)
        assert "not valid utf-8" in str(caught.value)


def test_invalid_utf8_after_the_sniffed_sample_is_located() -> None:
    head = b"id,name\n" + b"".join(b"%d,ok\n" % i for i in range(20_000))
    data = head + b"x,\xc3\x28\n"
    with pytest.raises(CsvInputError) as caught:
        parse(data, block=65_536)
    assert caught.value.byte_offset == len(head) + 2
    assert (caught.value.line, caught.value.column) == (20_002, 3)


def test_legacy_single_byte_text_is_detected_as_windows_1252() -> None:
    chunker = CsvChunker(10)
    text = "id,name\n1,café \u2013 10 €\n"
    chunks = chunker.feed(text.encode("cp1252")) + chunker.finish()
    assert chunker.encoding is not None
    assert (chunker.encoding.encoding.name, chunker.encoding.decided_by) == (
        "windows-1252",
        "detected",
    )
    assert chunks[0].rows == [["1", "café \u2013 10 €"]]


def test_iso_8859_15_must_be_named() -> None:
    data = "id,name\n1,5 \u20ac\n".encode("iso8859-15")
    assert flat(parse(data, encoding="iso-8859-15")[1])[0] == [["1", "5 €"]]


@pytest.mark.parametrize("codec", ["utf-16", "utf-8-sig"])
def test_byte_order_marks_decide(codec: str) -> None:
    data = 'id,name\r\n1,"Zoë 李 😀"\r\n'.encode(codec)
    for block in (1, 3, 1000):
        header, chunks = parse(data, block=block)
        assert header == ["id", "name"]
        assert flat(chunks)[0] == [["1", "Zoë 李 😀"]]


def test_binary_without_bom_is_text_in_no_encoding() -> None:
    with pytest.raises(CsvInputError) as caught:
        parse(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert caught.value.code == "invalid_encoding"
    assert caught.value.byte_offset == 0
    assert "not text in any encoding tidegate can tell" in str(caught.value)


def test_a_legacy_file_the_detector_cannot_tell_is_refused_with_its_candidates() -> None:
    data = 'id,name\n1,"Gdańsk, proszę"\n'.encode("cp1250")  # as plausible in windows-1252
    with pytest.raises(CsvInputError) as caught:
        parse(data)
    assert caught.value.code == "undetermined_encoding"
    assert caught.value.candidates is not None
    assert {"windows-1250", "windows-1252"} <= set(caught.value.candidates)
    assert "?encoding=" in str(caught.value)
    assert flat(parse(data, encoding="windows-1250")[1])[0] == [["1", "Gdańsk, proszę"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a;b;c\n1;2,5;3\n", ";"),
        ("a\tb\n1\t2\n", "\t"),
        ("a|b\n1|2\n", "|"),
        ("a,b\n1,2\n", ","),
        ('name\n"x; y"\n', ","),
    ],
)
def test_delimiter_sniffing(text: str, expected: str) -> None:
    chunker = CsvChunker(10)
    chunker.feed(text.encode())
    chunker.finish()
    assert chunker.delimiter == expected


def test_sniffing_prefers_the_delimiter_that_names_known_columns() -> None:
    chunker = CsvChunker(10, known_names=["price;eur"])
    chunker.feed(b"price;eur,qty\n1;2,3\n")
    chunker.finish()
    assert chunker.delimiter == ","


def test_cr_line_endings() -> None:
    data = b'a,b\r1,"x\ry"\r2,z\r'
    for block in range(1, len(data)):
        rows, lines = flat(parse(data, block=block)[1])
        assert rows == [["1", "x\ry"], ["2", "z"]]
        assert lines == [2, 4]


def test_unterminated_quote_is_malformed() -> None:
    with pytest.raises(CsvInputError) as caught:
        parse(b'id,name\n1,"open\n2,x\n')
    assert caught.value.code == "malformed_csv"
    assert caught.value.line == 2


def test_text_after_closing_quote_is_malformed() -> None:
    with pytest.raises(CsvInputError) as caught:
        parse(b'id,name\n1,ok\n2,"a"b\n3,ok\n', block=4)
    assert caught.value.code == "malformed_csv"
    assert caught.value.line == 3


def test_empty_and_header_only() -> None:
    assert parse(b"") == (None, [])
    assert parse(b"\xef\xbb\xbf") == (None, [])
    assert parse(b"a,b\n") == (["a", "b"], [])


def test_a_large_field_spanning_many_blocks() -> None:
    big = "x" * 300_000 + "\n" + "y" * 300_000
    data = f'id,text\n1,"{big}"\n2,small\n'.encode()
    rows, lines = flat(parse(data, block=65536)[1])
    assert rows == [["1", big], ["2", "small"]]
    assert lines == [2, 4]


BLOCK = 1 << 20


def feed_all(chunker: CsvChunker, data: bytes) -> list[ParsedChunk]:
    chunks: list[ParsedChunk] = []
    for start in range(0, len(data), BLOCK):
        chunks += chunker.feed(data[start : start + BLOCK])
    return chunks + chunker.finish()


def test_an_unclosed_quote_is_refused_at_the_record_limit_naming_its_line() -> None:
    """The record opened at line 3 never closes: refused once it passes the limit, not at
    the end of the input, and without parsing what it carries again for every block."""
    fed = 0
    chunker = CsvChunker(1000, max_record_chars=4 * BLOCK)
    filler = b'ab""cd\n' * (BLOCK // 7)  # doubled quotes and line breaks, inside the field
    with pytest.raises(CsvInputError) as caught:
        chunker.feed(b'id,name\n1,x\n2,"')
        for _ in range(100):
            chunker.feed(filler)
            fed += 1
    assert caught.value.code == "field_too_long"
    assert caught.value.line == 3
    assert fed <= 5  # refused as soon as the record passed 4 MiB, of 100 MiB


def test_parsing_an_open_quoted_field_is_linear() -> None:
    """A 20 MiB field split into 1 MiB blocks costs about what the same field costs in
    one block: the carried text is not parsed again block after block (that cost about 45
    times the input in memory, and quadratic time)."""
    field = b'a""b\n' * (4 * BLOCK)  # 20 MiB inside one quoted field
    data = b'id,notes\n1,"' + field + b'"\n2,x\n'
    chunker = CsvChunker(1000, max_record_chars=64 * BLOCK)
    calls = 0
    records = chunker._records

    def counted(text: str, *, final: bool) -> list[ParsedChunk]:
        nonlocal calls
        calls += 1
        return records(text, final=final)

    chunker._records = counted  # type: ignore[method-assign]
    rows, lines = flat(feed_all(chunker, data))
    assert [len(r[1]) for r in rows] == [len(field.replace(b'""', b'"')), 1]
    assert lines == [2, 4 * BLOCK + 3]
    assert calls <= 3  # the first block, the one that closes the field, the end


def test_a_closed_record_over_the_limit_is_refused() -> None:
    chunker = CsvChunker(1000, max_record_chars=1024)
    with pytest.raises(CsvInputError) as caught:
        feed_all(chunker, b"id,notes\n1,ok\n2," + b"x" * 2000 + b"\n3,ok\n")
    assert (caught.value.code, caught.value.line) == ("field_too_long", 3)


def test_records_with_several_quoted_fields_across_blocks_are_read() -> None:
    """A record whose quoted fields close and open again in later blocks is still read
    whole, and the next record keeps its line number."""
    part = b"y" * 3000 + b"\n"
    data = b'a,b,c\n"' + part * 2 + b'","' + part + b'","z"\nq,r,s\n'
    _, chunks = parse(data, block=1024)
    rows, lines = flat(chunks)
    assert rows[0] == [(part * 2).decode(), part.decode(), "z"]
    assert rows[1] == ["q", "r", "s"]
    assert lines == [2, 6]
