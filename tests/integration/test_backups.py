"""The loader's backup store on its own: files under their final name only when whole,
their checksum and fingerprint, and retention of the newest backups."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import msgspec

from services.loader.backups import BackupStore, sha256_of
from shared import operations
from shared.config import Settings


async def test_backups_beyond_the_newest_are_deleted_with_their_files(
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    settings_for: Callable[[str], Settings],
    tmp_path: Path,
) -> None:
    settings = msgspec.structs.replace(
        settings_for("loader"), backup_dir=str(tmp_path), backup_keep_last=1
    )
    store = BackupStore(pool, settings)
    table = f"public.kept_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, note text)")
    await db.execute(f"INSERT INTO {table} VALUES (1, 'a'), (2, NULL)")
    made = []
    for _ in range(2):
        backup_id, _ = await operations.request_backup(
            db, tables=[table], reason="retention", trigger="request"
        )
        async with pool.acquire() as conn, conn.transaction():
            status, result, error = await store.create(conn, backup_id)
        assert (status, error, result["rows"]) == ("completed", None, {table: 2})
        made.append(backup_id)
    first, second = await db.fetch(
        "SELECT status, file_name, sha256 FROM tidegate.backups WHERE id = ANY($1::uuid[])"
        " ORDER BY created_at",
        made,
    )
    files = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 — a test's temp dir
    assert first["status"] == "deleted" and first["file_name"] not in files
    assert second["status"] == "completed" and files == [second["file_name"]]
    assert sha256_of(tmp_path / second["file_name"]) == second["sha256"]
