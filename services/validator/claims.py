"""Which line of an import first used each key value (`KeyClaims`).

Chunks of an import reach one validator in file order, so it keeps the import's claims in
memory (about 100 bytes a key value) and records each chunk's new claims as one row per key
in `tidegate.import_key_chunks`, from which another validator (after a restart or a
rebalance) rebuilds them. Validating a chunk again finds its own claims: same verdict.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.validator import repository
from shared.db import Conn

Claims = dict[int, tuple[list[int], list[int]]]  # key number → (digests, lines), file order


@dataclass
class _Book:
    last_seq: int = -1
    # key number → digest → owner (seq, line) packed as seq << 32 | line: ints, not tuples
    owners: dict[int, dict[int, int]] = field(default_factory=dict)

    def add(self, seq: int, key_no: int, digests: Iterable[int], lines: Iterable[int]) -> None:
        owners = self.owners.setdefault(key_no, {})
        for digest, line in zip(digests, lines, strict=True):
            owners.setdefault(digest, seq << 32 | line)
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
        self, conn: Conn, import_id: uuid.UUID, seq: int, claims: Claims
    ) -> list[tuple[int, int, int, int]]:
        """Claim this chunk's first occurrences; returns (key number, line, owner seq,
        owner line) for each key value an earlier line already holds."""
        book = await self._book(conn, import_id, seq)
        lost: list[tuple[int, int, int, int]] = []
        mine: Claims = {}
        base = seq << 32
        for key_no, (digests, lines) in claims.items():
            owners = book.owners.setdefault(key_no, {})
            won_digests: list[int] = []
            won_lines: list[int] = []
            for digest, line in zip(digests, lines, strict=True):
                me = base | line
                owner = owners.setdefault(digest, me)
                if owner == me:
                    won_digests.append(digest)
                    won_lines.append(line)
                else:
                    lost.append((key_no, line, owner >> 32, owner & 0xFFFFFFFF))
            if won_digests:
                mine[key_no] = (won_digests, won_lines)
        book.last_seq = max(book.last_seq, seq)
        await repository.record_claims(conn, import_id, seq, mine)
        return lost

    def forget(self, import_id: uuid.UUID) -> None:
        """After the last chunk: a chunk validated again rebuilds from the database."""
        self._books.pop(import_id, None)

    async def claimed(
        self, conn: Conn, import_id: uuid.UUID, key_no: int, digests: Iterable[int], seq: int
    ) -> set[int]:
        """Those of `digests` claimed by this import in chunks up to `seq`."""
        owners = (await self._book(conn, import_id, seq)).owners.get(key_no, {})
        return {d for d in digests if d in owners and owners[d] >> 32 <= seq}
