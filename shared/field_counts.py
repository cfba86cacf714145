"""`{field, count}` lists: how the import report and verify-data's report count the fields
with missing required values and with invalid formats (one shape for both)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec


class FieldCount(msgspec.Struct, kw_only=True):
    field: str  # a column, or "(row)" for errors of the whole row
    count: int


def by_field(counts: Mapping[str, int]) -> list[FieldCount]:
    return [FieldCount(field=field, count=n) for field, n in sorted(counts.items())]
