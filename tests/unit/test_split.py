"""Cutting a file into parts at record boundaries (`tidegate import --split`)."""

from __future__ import annotations

import io

import pytest

from tidegate.split_cli import SplitError, cut, sniff_delimiter

HEADER = 'id,"long\nname",note\r\n'


def lines(text: str) -> list[str]:
    return io.StringIO(text, newline="").readlines()


def test_parts_hold_whole_records_and_map_their_lines_back() -> None:
    records = [
        f'{i},n{i},"x\ny {i}"\r\n' if i % 3 == 0 else f"{i},n{i},plain\r\n" for i in range(25)
    ]
    text = HEADER + records[0] + "\r\n" + "".join(records[1:])  # a blank line after the first
    parts = list(cut(lines(text), delimiter=",", max_records=10, max_chars=10**9))
    assert [p.records for p in parts] == [10, 10, 5]
    assert all(p.text.startswith(HEADER) and p.header_lines == 2 for p in parts)
    bodies = "".join(p.text[len(HEADER) :] for p in parts)
    assert HEADER + bodies == text  # nothing lost, nothing repeated
    file_lines = text.splitlines()
    for part in parts:
        part_lines = part.text.splitlines()
        for n in range(part.header_lines + 1, len(part_lines) + 1):
            assert part_lines[n - 1] == file_lines[part.original_line(n) - 1]


def test_a_size_limit_cuts_too() -> None:
    text = "id,v\n" + "".join(f"{i},{'x' * 50}\n" for i in range(10))
    parts = list(cut(lines(text), delimiter=",", max_records=100, max_chars=200))
    assert len(parts) > 1 and all(len(p.text) <= 200 for p in parts)
    assert sum(p.records for p in parts) == 10


def test_malformed_csv_is_refused_with_its_line() -> None:
    text = 'id,v\n1,"ok"\n2,"a"b\n'
    with pytest.raises(SplitError, match="line 3"):
        list(cut(lines(text), delimiter=",", max_records=10, max_chars=10**9))


def test_the_delimiter_is_the_headers() -> None:
    assert sniff_delimiter('a;b;"c,d"\n') == ";"
    assert sniff_delimiter("a\tb\n") == "\t"
    assert sniff_delimiter("a\n") == ","
