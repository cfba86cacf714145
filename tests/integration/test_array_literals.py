"""Chunk columns travel as one array literal each (`shared.db.text_array`): every value
comes back from PostgreSQL exactly as sent."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import text_array

AWKWARD = [
    "", " ", "plain", 'a "quoted" word', "back\\slash", "\\", '"', "{braces}", "a,b", "NULL",
    "tab\there", "line\nbreak", "  padded  ", "Zoë 李 🎉", "\\N", "}", "{", "'single'",
]  # fmt: skip


async def test_text_values_come_back_exactly(db: asyncpg.Connection) -> None:
    back = await db.fetchval("SELECT $1::text::text[]", text_array(AWKWARD))
    assert back == AWKWARD
    assert await db.fetchval("SELECT $1::text::text[]", text_array([])) == []


def test_nul_is_refused_rather_than_split() -> None:
    with pytest.raises(ValueError, match="NUL"):
        text_array(["a\x00b", "c"])
