"""The validator's claim book (`Owners`) answers as a dict's `setdefault` would, across
merges of its levels; its digests are `digest`'s numbers."""

from __future__ import annotations

import random

from services.validator.claims import NONE, Owners
from services.validator.keys import digest, key_digests


def canon_for_int(value: str) -> str:
    return str(int(value))


def test_owners_answer_as_setdefault_would_across_merges() -> None:
    chooser = random.Random(7)  # noqa: S311 (test data)
    owners = Owners()  # 60 chunks: levels merge many times
    model: dict[int, int] = {}
    pool = [chooser.randrange(-(2**63), 2**63) for _ in range(3_000)]
    for seq in range(60):
        digests = list(dict.fromkeys(chooser.sample(pool, 80)))  # unique within a chunk
        mine = [seq << 32 | (line + 2) for line in range(len(digests))]
        expected = [model.setdefault(d, m) for d, m in zip(digests, mine, strict=True)]
        assert owners.claim(digests, mine).tolist() == expected
    assert len(owners) == len(model)
    probe = [*chooser.sample(pool, 500), 2**62 + 1, -(2**63), 2**63 - 1]
    assert owners.find(probe).tolist() == [model.get(d, NONE) for d in probe]


def test_an_empty_book_owns_nothing() -> None:
    assert Owners().find([1, 2, 3]).tolist() == [NONE, NONE, NONE]
    assert Owners().find([]).tolist() == []


def test_key_digests_are_the_digests_of_each_key() -> None:
    cells: list[tuple[str, ...] | None] = [("42",), None, (" 042",), ("-7",)]
    present, found = key_digests([canon_for_int], cells)
    assert present == [0, 2, 3]
    assert found.tolist() == [digest(["42"]), digest(["42"]), digest(["-7"])]
    pairs: list[tuple[str, ...] | None] = [("a", "b"), None, ("ä", "")]
    present, found = key_digests([str, str], pairs)
    assert (present, found.tolist()) == ([0, 2], [digest(["a", "b"]), digest(["ä", ""])])
