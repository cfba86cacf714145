"""The validator's claim book (`Owners`) answers as a dict's `setdefault` would, across
merges of its recent claims into the sorted arrays."""

from __future__ import annotations

import random

from services.validator.claims import NONE, Owners


def test_owners_answer_as_setdefault_would_across_merges() -> None:
    chooser = random.Random(7)  # noqa: S311 (test data)
    owners = Owners()
    owners.MERGE_AT = 100  # several merges in this test
    model: dict[int, int] = {}
    pool = [chooser.randrange(-(2**63), 2**63) for _ in range(3_000)]
    for seq in range(60):
        digests = list(dict.fromkeys(chooser.sample(pool, 80)))  # unique within a chunk
        mine = [seq << 32 | (line + 2) for line in range(len(digests))]
        expected = [model.setdefault(d, m) for d, m in zip(digests, mine, strict=True)]
        assert owners.claim(digests, mine) == expected
    assert len(owners) == len(model)
    probe = [*chooser.sample(pool, 500), 2**62 + 1, -(2**63), 2**63 - 1]
    assert owners.find(probe) == [model.get(d, NONE) for d in probe]


def test_an_empty_book_owns_nothing() -> None:
    assert Owners().find([1, 2, 3]) == [NONE, NONE, NONE]
    assert Owners().find([]) == []
