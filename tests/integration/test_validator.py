"""The validator's checks that need other rows, on the real PostgreSQL: the same chunk
validated again gives the same verdict, and the first line of the file keeps a key."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from services.validator.handlers import ChunkValidator
from shared.catalog import TableCache
from shared.events import ChunkSubmitted, ChunkValidated
from shared.rulebook import RuleBook


@pytest.fixture
async def table(db: asyncpg.Connection) -> str:
    name = f"public.keys_{uuid.uuid4().hex[:8]}"
    await db.execute(
        f"CREATE TABLE {name} (id int PRIMARY KEY, code uuid UNIQUE,"
        f" parent int REFERENCES {name} (id))"
    )
    await db.execute(f"INSERT INTO {name} VALUES (100, NULL, NULL)")
    return name


def submitted(
    import_id: uuid.UUID, table: str, seq: int, rows: list[list[str]], first: int
) -> ChunkSubmitted:
    return ChunkSubmitted(
        import_id=import_id,
        seq=seq,
        table=table,
        columns=("id", "code", "parent"),
        rows=rows,
        lines=list(range(first, first + len(rows))),
    )


def verdict(result: ChunkValidated) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.column, e.code) for e in result.errors]


async def test_keys_across_chunks_and_validating_again(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str, tmp_path: Path
) -> None:
    validator = ChunkValidator(pool, TableCache(("public",)), RuleBook(tmp_path), ("public",), 100)
    import_id = uuid.uuid4()
    code = "8f14e45f-ceea-467a-9af8-2f2d4c6f3a10"
    first = submitted(
        import_id, table, 0, [["1", code, ""], ["2", "", "1"], ["3", "", "100"]], first=2
    )
    second = submitted(
        import_id,
        table,
        1,
        [
            ["01", "", ""],
            ["4", code.upper(), ""],
            ["5", "", "3"],  # a row of an earlier chunk
            ["6", "", "7"],  # a row further down the same chunk: loaded in one statement
            ["7", "", ""],
            ["8", "", "9"],
        ],
        first=5,
    )
    async with pool.acquire() as conn:
        one = await validator.validate(conn, first)
        two = await validator.validate(conn, second)
        again = [await validator.validate(conn, first), await validator.validate(conn, second)]
    assert verdict(one) == []
    assert verdict(two) == [
        (5, "id", "duplicate_in_file"),  # 01 is 1 (line 2)
        (6, "code", "duplicate_in_file"),  # a UUID in another case is the same key
        (10, "parent", "missing_reference"),  # no 9 in the table or in the file so far
    ]
    assert "repeats line 2 of this file" in two.errors[0].message
    assert [one, two] == again
    restarted = ChunkValidator(pool, TableCache(("public",)), RuleBook(tmp_path), ("public",), 100)
    async with pool.acquire() as conn:  # claims rebuilt from the database
        assert await restarted.validate(conn, second) == two
    assert (two.total_rows, two.invalid_rows, two.duplicate_rows, len(two.rows)) == (6, 3, 2, 3)
    claims = await db.fetchval(
        "SELECT sum(cardinality(digests)) FROM tidegate.import_key_chunks WHERE import_id = $1",
        import_id,
    )
    assert claims == 9  # ids 1-8 and one code: first occurrences only
