"""Which line of an import first used each key value (`KeyClaims`).

Chunks of an import reach one validator in file order, so it keeps the import's claims in
memory (`Owners`: 16 bytes a key value in sorted numpy arrays, searched a chunk at a
time) and records each chunk's new claims as one row per key
in `tidegate.import_key_chunks`, from which another validator (after a restart or a
rebalance) rebuilds them. Validating a chunk again finds its own claims: same verdict.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.validator import repository
from shared.db import Conn

Digests = npt.NDArray[np.int64]
# Key number → (digests, lines) of the key values a chunk uses first, in file order.
Claims = dict[int, tuple[Digests, Digests]]

NONE = -1  # no owner


class Owners:
    """Key digest → its owner, the line that claimed it first, packed as seq << 32 | line.

    A million claims take 16 MB: levels of sorted numpy arrays (digests, owners), each
    at least twice the size of the next, searched a chunk at a time; a chunk's new claims
    are a new level, and levels merge as they grow (a log-structured merge), so no claim
    is looked at one by one in Python."""

    def __init__(self) -> None:
        self._levels: list[tuple[Digests, Digests]] = []

    def __len__(self) -> int:
        return sum(len(digests) for digests, _ in self._levels)

    def find(self, digests: Sequence[int] | Digests) -> Digests:
        """The owner of each digest, or NONE."""
        wanted = np.asarray(digests, np.int64)
        order = np.argsort(wanted)  # searched in order, each search starts where the last ended
        ordered = wanted[order]
        found = np.full(len(wanted), NONE, np.int64)
        for keys, owners in self._levels:
            at = np.searchsorted(keys, ordered)
            at[at == len(keys)] = 0
            found = np.where(keys[at] == ordered, owners[at], found)
        owner = np.empty_like(found)
        owner[order] = found
        return owner

    def claim(self, digests: Sequence[int] | Digests, owners: Sequence[int] | Digests) -> Digests:
        """Give each digest not yet owned its owner in `owners` (`digests` are unique);
        every digest's owner."""
        wanted = np.asarray(digests, np.int64)
        mine = np.asarray(owners, np.int64)
        found = self.find(wanted)
        new = found == NONE
        if new.any():
            self._add(wanted[new], mine[new])
        return np.where(new, mine, found)

    def _add(self, digests: Digests, owners: Digests) -> None:
        order = np.argsort(digests)
        self._levels.append((digests[order], owners[order]))
        levels = self._levels
        while len(levels) > 1 and len(levels[-2][0]) < 2 * len(levels[-1][0]):
            (upper, upper_owners), (lower, lower_owners) = levels.pop(), levels.pop()
            keys = np.concatenate((lower, upper))
            order = np.argsort(keys, kind="stable")
            levels.append((keys[order], np.concatenate((lower_owners, upper_owners))[order]))


@dataclass
class _Book:
    last_seq: int = -1
    owners: dict[int, Owners] = field(default_factory=dict)  # by key number

    def of(self, key_no: int) -> Owners:
        return self.owners.setdefault(key_no, Owners())

    def add(self, seq: int, key_no: int, digests: Digests, lines: Digests) -> None:
        self.of(key_no).claim(digests, lines | (seq << 32))
        self.last_seq = max(self.last_seq, seq)


class KeyClaims:
    def __init__(self, max_imports: int = 64) -> None:
        self._books: OrderedDict[uuid.UUID, _Book] = OrderedDict()
        self._max = max_imports

    async def _book(self, conn: Conn, import_id: uuid.UUID, seq: int) -> _Book:
        book = self._books.get(import_id)
        if book is None or seq > book.last_seq + 1:  # unknown here, or chunks went elsewhere
            book = _Book()
            for seq_, key_no, digests, lines in await repository.claimed_chunks(conn, import_id):
                book.add(seq_, key_no, digests, lines)
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
        won_by_chunk: list[tuple[int, Claims]] = []
        for seq, claims in chunks:
            lost: list[tuple[int, int, int, int]] = []
            mine: Claims = {}
            for key_no, (digests, lines) in claims.items():
                me = lines | (seq << 32)
                owned = book.of(key_no).claim(digests, me)
                won = owned == me
                for k in np.flatnonzero(~won).tolist():
                    owner = int(owned[k])
                    lost.append((key_no, int(lines[k]), owner >> 32, owner & 0xFFFFFFFF))
                if won.any():
                    mine[key_no] = (digests[won], lines[won])
            book.last_seq = max(book.last_seq, seq)
            lost_by_chunk.append(lost)
            won_by_chunk.append((seq, mine))
        await repository.record_claims(conn, import_id, won_by_chunk)
        return lost_by_chunk

    def forget(self, import_id: uuid.UUID) -> None:
        """After the last chunk: a chunk validated again rebuilds from the database."""
        self._books.pop(import_id, None)

    async def claimed(
        self, conn: Conn, import_id: uuid.UUID, key_no: int, digests: Sequence[int], seq: int
    ) -> set[int]:
        """Those of `digests` claimed by this import in chunks up to `seq`."""
        owners = (await self._book(conn, import_id, seq)).of(key_no).find(digests).tolist()
        return {d for d, o in zip(digests, owners, strict=True) if o != NONE and o >> 32 <= seq}
