"""The validator's checks that need other rows, on the real PostgreSQL: the same chunk
validated again gives the same verdict, and the first line of the file keeps a key."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from services.loader.handlers import ChunkLoader
from services.validator import repository
from services.validator.handlers import ChunkValidator
from shared import chunk_store
from shared.catalog import TableCache
from shared.events import ChunkSubmitted, ChunkValidated, digest, encode
from shared.rulebook import RuleBook
from tests.integration.test_loader import no_backup


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
    validator = ChunkValidator(
        pool, TableCache(("public",)), RuleBook(tmp_path), ("public",), 100, 0.01
    )
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
    restarted = ChunkValidator(
        pool, TableCache(("public",)), RuleBook(tmp_path), ("public",), 100, 0.01
    )
    async with pool.acquire() as conn:  # claims rebuilt from the database
        assert await restarted.validate(conn, second) == two
    assert (two.total_rows, two.invalid_rows, two.duplicate_rows, two.valid_rows) == (6, 3, 2, 3)
    claims = await db.fetchval(
        "SELECT sum(length(digests)) / 8 FROM tidegate.import_key_chunks WHERE import_id = $1",
        import_id,
    )
    assert claims == 9  # ids 1-8 and one code: first occurrences only


async def test_chunks_checked_together_get_the_verdicts_of_one_at_a_time(
    pool: asyncpg.Pool, table: str, tmp_path: Path
) -> None:
    """Consecutive chunks fetched together are checked with one lookup per key: in-file
    duplicates within and across them, and keys already in the table, come out as when
    each chunk is checked alone."""
    code = "8f14e45f-ceea-467a-9af8-2f2d4c6f3a10"
    chunks = [
        [["1", code, ""], ["2", "", "1"], ["100", "", ""]],
        [["01", "", ""], ["4", code.upper(), ""], ["5", "", "3"], ["5", "", ""]],
        [["6", "", "9"], ["2", "", ""], ["7", "", "6"]],
    ]

    def chunked(import_id: uuid.UUID) -> list[ChunkSubmitted]:
        lines = [2, 5, 9]
        return [
            submitted(import_id, table, seq, rows, first=lines[seq])
            for seq, rows in enumerate(chunks)
        ]

    def validator() -> ChunkValidator:
        return ChunkValidator(
            pool, TableCache(("public",)), RuleBook(tmp_path), ("public",), 100, 0.01
        )

    alone, together = validator(), validator()
    async with pool.acquire() as conn:
        one_by_one = [await alone.validate(conn, c) for c in chunked(uuid.uuid4())]
        at_once = await together.validate_together(conn, chunked(uuid.uuid4()))
    assert [verdict(v) for v in at_once] == [verdict(v) for v in one_by_one]
    assert [(v.dropped, v.invalid_rows, v.duplicate_rows) for v in at_once] == [
        (v.dropped, v.invalid_rows, v.duplicate_rows) for v in one_by_one
    ]
    assert [verdict(v) for v in at_once] == [
        [(4, "id", "duplicate_in_table")],
        [
            (5, "id", "duplicate_in_file"),
            (6, "code", "duplicate_in_file"),
            (7, "parent", "missing_reference"),  # no 3 in the table or the file so far
            (8, "id", "duplicate_in_file"),
        ],
        [(9, "parent", "missing_reference"), (10, "id", "duplicate_in_file")],
    ]


async def test_the_same_verdict_after_the_chunk_was_loaded(
    pool: asyncpg.Pool, db: asyncpg.Connection, table: str, tmp_path: Path
) -> None:
    """A chunk validated again after it was loaded (a re-drive) does not find its own rows
    in the table as duplicates; another import's rows still are."""
    validator = ChunkValidator(
        pool, TableCache(("public",)), RuleBook(tmp_path), ("public",), 100, 0.01
    )
    loader = ChunkLoader(pool, TableCache(("public",)), 0.01, no_backup, max_rows=10_000)
    import_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source)"
        " VALUES ($1, $2, '{id,code,parent}', 3, 'kafka')",
        import_id,
        table,
    )
    chunk = submitted(import_id, table, 0, [["1", "", ""], ["2", "", "1"], ["100", "", ""]], 2)
    async with pool.acquire() as conn:
        before = await validator.validate(conn, chunk)
        await db.execute(
            "INSERT INTO tidegate.chunk_verdicts (import_id, seq, digest) VALUES ($1, 0, $2)",
            import_id,
            digest(before),
        )
        assert await chunk_store.store_received(conn, chunk, encode(chunk))
        loaded = await loader.load(conn, before)
        after = await validator.validate(conn, chunk)
        other = msgspec.structs.replace(chunk, import_id=uuid.uuid4())
        elsewhere = await validator.validate(conn, other)
    assert verdict(before) == [(4, "id", "duplicate_in_table")]  # 100 was there already
    assert (loaded.loaded_rows, loaded.failed_rows) == (2, 0)
    assert after == before
    assert digest(after) == digest(before)
    assert verdict(elsewhere) == [
        (2, "id", "duplicate_in_table"),
        (3, "id", "duplicate_in_table"),
        (4, "id", "duplicate_in_table"),
    ]


CASE_INSENSITIVE_EMAIL = """format = "tidegate.rules/v1"
[[keys]]
columns = ["email"]
case_insensitive = true
"""


async def test_a_case_insensitive_key_declared_in_a_rule_file(
    pool: asyncpg.Pool, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """The database enforces nothing on `email`; the rule file's key is checked within
    the file (across chunks) and against the table, ignoring case; an update may keep the
    value its own row already has."""
    table = f"public.people_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, email text)")
    await db.execute(f"INSERT INTO {table} VALUES (100, 'Ann@Example.com')")
    (tmp_path / f"{table}.toml").write_text(CASE_INSENSITIVE_EMAIL)
    validator = ChunkValidator(
        pool, TableCache(("public",)), RuleBook(tmp_path), ("public",), 100, 0.01
    )

    def chunk(
        import_id: uuid.UUID, seq: int, rows: list[list[str]], first: int, policy: str = "reject"
    ) -> ChunkSubmitted:
        return msgspec.convert(
            {
                "import_id": str(import_id), "seq": seq, "table": table,
                "columns": ["id", "email"], "rows": rows, "first_line": first,
                "on_duplicate": policy,
            },
            ChunkSubmitted,
        )  # fmt: skip

    one_import, own_import, taken_import = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        one = await validator.validate(
            conn,
            chunk(one_import, 0, [["1", "a@x.com"], ["2", "A@X.COM"], ["3", "ann@example.com"]], 2),
        )
        two = await validator.validate(
            conn, chunk(one_import, 1, [["4", "a@X.com"], ["5", "b@x.com"]], 5)
        )
        own = await validator.validate(
            conn,
            chunk(own_import, 0, [["100", "ANN@example.com"], ["7", "c@x.com"]], 2, "update"),
        )
        taken = await validator.validate(
            conn, chunk(taken_import, 0, [["6", "ann@EXAMPLE.com"]], 2, "update")
        )
    assert verdict(one) == [(3, "email", "duplicate_in_file"), (4, "email", "duplicate_in_table")]
    assert "(ignoring case)" in one.errors[1].message
    assert verdict(two) == [(5, "email", "duplicate_in_file")]
    assert "repeats line 2 of this file" in two.errors[0].message
    assert verdict(own) == []  # 100 keeps its own email, written another way
    assert (own.dropped, own.valid_rows) == ([], 2)
    assert verdict(taken) == [(2, "email", "duplicate_in_table")]  # 6 would take 100's


async def test_table_lookups_compare_values_as_the_columns_type_does(
    db: asyncpg.Connection,
) -> None:
    """Keys of one column and of several are looked up by PostgreSQL's own `=` on the
    column's type (` 042` is 42, 'A' is not 'a'), each input position once per occurrence,
    in order."""
    name = f"public.lookups_{uuid.uuid4().hex[:8]}"
    await db.execute(
        f"CREATE TABLE {name} (id bigint PRIMARY KEY, email text, region text,"
        " UNIQUE (email, region))"
    )
    await db.execute(f"INSERT INTO {name} VALUES (42, 'a@x', 'eu'), (7, 'b@x', 'us')")
    ids = [("id", "bigint")]
    present = repository.lookup_sql(name, ids, present=True)
    missing = repository.lookup_sql(name, ids, present=False)
    values = [" 042", "8", "7", "042", "+7"]
    assert await repository.lookup(db, present, [[v] for v in values]) == [0, 2, 3, 4]
    assert await repository.lookup(db, missing, [[v] for v in values]) == [1]
    pairs = [("email", "text"), ("region", "text")]
    tuples = [["a@x", "eu"], ["A@x", "eu"], ["b@x", "us"], ["b@x", "eu"]]
    found = repository.lookup_sql(name, pairs, present=True)
    assert await repository.lookup(db, found, tuples) == [0, 2]
    emails = repository.lookup_sql(name, [("email", "text")], present=True)
    assert await repository.lookup(db, emails, [[t[0]] for t in tuples]) == [0, 2, 3]
