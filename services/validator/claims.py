"""Which line of an import first used each key value (`KeyClaims`).

Chunks of an import reach one validator in file order, so it keeps the import's claims in
memory (`Owners`: 16 bytes a key value in sorted numpy arrays, searched a chunk at a time,
plus a dict of the latest claims) and records each chunk's new claims as one row per key
in `tidegate.import_key_chunks`, from which another validator (after a restart or a
rebalance) rebuilds them. Validating a chunk again finds its own claims: same verdict.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.validator import repository
from shared.db import Conn

Claims = dict[int, tuple[list[int], list[int]]]  # key number → (digests, lines), file order

NONE = -1  # no owner


class Owners:
    """Key digest → its owner, the line that claimed it first, packed as seq << 32 | line.

    A million claims take 16 MB: sorted numpy arrays of digests and owners, searched a
    chunk at a time, and a dict of the claims since the last merge into them."""

    MERGE_AT = 65_536

    def __init__(self) -> None:
        self._digests = np.empty(0, np.int64)
        self._owners = np.empty(0, np.int64)
        self._recent: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._digests) + len(self._recent)

    def find(self, digests: Sequence[int]) -> list[int]:
        """The owner of each digest, or NONE."""
        if len(self._digests):
            wanted = np.array(digests, np.int64)
            at = np.searchsorted(self._digests, wanted)
            at[at == len(self._digests)] = 0
            found: list[int] = np.where(
                self._digests[at] == wanted, self._owners[at], NONE
            ).tolist()
        else:
            found = [NONE] * len(digests)
        recent = self._recent
        return [
            o if o != NONE else recent.get(d, NONE) for d, o in zip(digests, found, strict=True)
        ]

    def claim(self, digests: Sequence[int], owners: Sequence[int]) -> list[int]:
        """Give each digest not yet owned its owner in `owners`; every digest's owner."""
        recent = self._recent
        result = [
            o if o != NONE else recent.setdefault(d, me)
            for d, me, o in zip(digests, owners, self.find(digests), strict=True)
        ]
        if len(recent) >= self.MERGE_AT:
            self._merge()
        return result

    def _merge(self) -> None:
        count = len(self._recent)
        digests = np.fromiter(self._recent.keys(), np.int64, count)
        owners = np.fromiter(self._recent.values(), np.int64, count)
        order = np.argsort(digests)
        digests, owners = digests[order], owners[order]
        at = np.searchsorted(self._digests, digests)
        self._digests = np.insert(self._digests, at, digests)
        self._owners = np.insert(self._owners, at, owners)
        self._recent = {}


@dataclass
class _Book:
    last_seq: int = -1
    owners: dict[int, Owners] = field(default_factory=dict)  # by key number

    def of(self, key_no: int) -> Owners:
        return self.owners.setdefault(key_no, Owners())

    def add(self, seq: int, key_no: int, digests: Sequence[int], lines: Sequence[int]) -> None:
        self.of(key_no).claim(digests, [seq << 32 | line for line in lines])
        self.last_seq = max(self.last_seq, seq)


class KeyClaims:
    def __init__(self, max_imports: int = 64) -> None:
        self._books: OrderedDict[uuid.UUID, _Book] = OrderedDict()
        self._max = max_imports

    async def _book(self, conn: Conn, import_id: uuid.UUID, seq: int) -> _Book:
        book = self._books.get(import_id)
        if book is None or seq > book.last_seq + 1:  # unknown here, or chunks went elsewhere
            book = _Book()
            for row in await repository.claimed_chunks(conn, import_id):
                book.add(row["seq"], row["key_no"], row["digests"], row["lines"])
            self._books[import_id] = book
        self._books.move_to_end(import_id)
        while len(self._books) > self._max:
            self._books.popitem(last=False)
        return book

    async def claim(
        self, conn: Conn, import_id: uuid.UUID, chunks: Sequence[tuple[int, Claims]]
    ) -> list[list[tuple[int, int, int, int]]]:
        """Claim the first occurrences of consecutive chunks (seq, claims), in order; for
        each chunk, (key number, line, owner seq, owner line) of each key value an earlier
        line already holds. The chunks' new claims are recorded in one statement."""
        if not chunks:
            return []
        book = await self._book(conn, import_id, chunks[0][0])
        lost_by_chunk: list[list[tuple[int, int, int, int]]] = []
        won: list[tuple[int, Claims]] = []
        for seq, claims in chunks:
            lost: list[tuple[int, int, int, int]] = []
            mine: Claims = {}
            base = seq << 32
            for key_no, (digests, lines) in claims.items():
                won_digests: list[int] = []
                won_lines: list[int] = []
                mine_all = [base | line for line in lines]
                owned = book.of(key_no).claim(digests, mine_all)
                for digest, line, me, owner in zip(digests, lines, mine_all, owned, strict=True):
                    if owner == me:
                        won_digests.append(digest)
                        won_lines.append(line)
                    else:
                        lost.append((key_no, line, owner >> 32, owner & 0xFFFFFFFF))
                if won_digests:
                    mine[key_no] = (won_digests, won_lines)
            book.last_seq = max(book.last_seq, seq)
            lost_by_chunk.append(lost)
            won.append((seq, mine))
        await repository.record_claims(conn, import_id, won)
        return lost_by_chunk

    def forget(self, import_id: uuid.UUID) -> None:
        """After the last chunk: a chunk validated again rebuilds from the database."""
        self._books.pop(import_id, None)

    async def claimed(
        self, conn: Conn, import_id: uuid.UUID, key_no: int, digests: Sequence[int], seq: int
    ) -> set[int]:
        """Those of `digests` claimed by this import in chunks up to `seq`."""
        owners = (await self._book(conn, import_id, seq)).of(key_no).find(digests)
        return {d for d, o in zip(digests, owners, strict=True) if o != NONE and o >> 32 <= seq}
