"""Key values in canonical form, so that two spellings PostgreSQL considers equal
(` 042` and `42` in an integer column, upper- and lower-case UUIDs, `1.50` and `1.5`)
are recognised as the same key within a file. Comparisons with rows already in a table
are made by PostgreSQL itself (see repository.py)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from shared.catalog import Column

Canon = Callable[[str], str]


def _timestamptz(value: str) -> str:
    parsed = datetime.fromisoformat(value.strip())
    return (parsed.astimezone(UTC) if parsed.tzinfo else parsed).isoformat()


_CANON: dict[str, Canon] = {
    "int2": lambda v: str(int(v)),
    "int4": lambda v: str(int(v)),
    "int8": lambda v: str(int(v)),
    "numeric": lambda v: str(Decimal(v.strip()).normalize()),
    "uuid": lambda v: str(uuid.UUID(v.strip())),
    "bool": lambda v: str(v.strip().lower() in ("true", "1", "yes")),
    "date": lambda v: date.fromisoformat(v.strip()).isoformat(),
    "timestamp": lambda v: datetime.fromisoformat(v.strip()).isoformat(),
    "timestamptz": _timestamptz,
    "bpchar": lambda v: v.rstrip(" "),
    "citext": str.casefold,
}


def canon_for(column: Column) -> Canon:
    """Text as is for text-like types; values were validated before they get here."""
    return _CANON.get(column.type_name, str)


def digest(parts: Sequence[str]) -> int:
    """A signed 64-bit digest of a (possibly composite) canonical key. Two different key
    values of one import share a digest with odds of about n²/2⁶⁵ (1 in 10 million for two
    million values); the later one would be reported as a duplicate."""
    return digest_text("\x1f".join(parts))


def digest_text(text: str) -> int:
    """`digest` of a one-column key (the same number)."""
    raw = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


def key_digests(
    canons: Sequence[Canon], cells: Sequence[tuple[str, ...] | None]
) -> tuple[list[int], npt.NDArray[np.int64]]:
    """The rows that have a key (positions), and the `digest` of each one's key."""
    present = [i for i, c in enumerate(cells) if c is not None]
    keys = [c for c in cells if c is not None]
    if len(canons) == 1:
        canon = canons[0]
        texts = [k[0] for k in keys] if canon is str else [canon(k[0]) for k in keys]
    else:
        texts = ["\x1f".join([f(v) for f, v in zip(canons, k, strict=True)]) for k in keys]
    blake2b = hashlib.blake2b
    raw = b"".join([blake2b(text.encode(), digest_size=8).digest() for text in texts])
    # Eight big-endian bytes each, read as signed: `digest_text`'s numbers, at C speed.
    return present, np.frombuffer(raw, ">i8").astype(np.int64)
