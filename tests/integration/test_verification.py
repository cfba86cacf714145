"""verify-data in the validator, on the real PostgreSQL: progress is written while the
verification's row is held locked, and one row can be verified alone."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from services.validator import verify
from services.validator.verify import Verifier
from shared.events import VerificationRequested
from shared.rulebook import RuleBook


async def _request(
    db: asyncpg.Connection, table: str, row_key: dict[str, str] | None = None
) -> uuid.UUID:
    verification_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO tidegate.verifications (id, tables, row_key) VALUES ($1, $2, $3)",
        verification_id,
        [table],
        None if row_key is None else msgspec.json.encode(row_key).decode(),
    )
    return verification_id


async def test_progress_is_written_while_the_verification_runs(
    pool: asyncpg.Pool, db: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify.Progress, "EVERY", 0.0)
    table = f"public.progress_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
    await db.execute(f"INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, 12000) g")
    await db.execute(f"ANALYZE {table}")
    verification_id = await _request(db, table)
    seen: list[asyncpg.Record | None] = []
    real = verify.Progress.__call__

    async def spy(self: verify.Progress, rows_checked: int, *, force: bool = False) -> None:
        await real(self, rows_checked, force=force)
        seen.append(
            await db.fetchrow(
                "SELECT rows_checked, rows_estimated FROM tidegate.verification_progress"
                " WHERE verification_id = $1",
                verification_id,
            )
        )

    monkeypatch.setattr(verify.Progress, "__call__", spy)
    verifier = Verifier(pool, RuleBook(tmp_path), ("public",))
    assert await verifier.handle(VerificationRequested(verification_id=verification_id)) == []
    assert [tuple(r) if r else None for r in seen] == [
        (0, 12000),
        (5000, 12000),
        (10000, 12000),
        (12000, 12000),
    ]
    row = await db.fetchrow(
        "SELECT status, passed FROM tidegate.verifications WHERE id = $1", verification_id
    )
    assert row is not None and (row["status"], row["passed"]) == ("completed", True)


async def test_one_row_is_verified_alone(
    pool: asyncpg.Pool, db: asyncpg.Connection, tmp_path: Path
) -> None:
    table = f"public.one_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, email text)")
    await db.execute(
        f"INSERT INTO {table} VALUES (1, 'a@x.com'), (2, 'A@X.com'), (3, 'bad'), (4, 'c@x.com')"
    )
    (tmp_path / f"{table}.toml").write_text(
        'format = "tidegate.rules/v1"\n[columns.email]\nformat = "email"\n'
        '[[keys]]\ncolumns = ["email"]\ncase_insensitive = true\n'
    )
    verifier = Verifier(pool, RuleBook(tmp_path), ("public",))
    results = {}
    for key in ("1", "3", "4"):
        verification_id = await _request(db, table, {"id": key})
        await verifier.handle(VerificationRequested(verification_id=verification_id))
        result = await db.fetchval(
            "SELECT result FROM tidegate.verifications WHERE id = $1", verification_id
        )
        (report,) = msgspec.json.decode(result)
        results[key] = (report["total_records"], report["checks"])
    assert results == {
        "1": (1, {"rules": 0, "duplicates": 1, "associations": 0, "lineage": 0}),
        "3": (1, {"rules": 1, "duplicates": 0, "associations": 0, "lineage": 0}),
        "4": (1, {"rules": 0, "duplicates": 0, "associations": 0, "lineage": 0}),
    }
