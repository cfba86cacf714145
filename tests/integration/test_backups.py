"""The loader's backup store on its own: files under their final name only when whole,
their checksum and fingerprint, and retention of the newest backups per set of tables,
files removed only once the deletion has committed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest

from services.loader.backups import BackupStore, sha256_of
from shared import operations
from shared.config import Settings


def _keeping_one(
    pool: asyncpg.Pool, settings_for: Callable[[str], Settings], tmp_path: Path
) -> BackupStore:
    """A store in `tmp_path` that keeps one backup per set of tables."""
    settings = msgspec.structs.replace(
        settings_for("loader"), backup_dir=str(tmp_path), backup_keep_last=1
    )
    return BackupStore(pool, settings)


async def test_backups_beyond_the_newest_are_deleted_with_their_files(
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    settings_for: Callable[[str], Settings],
    tmp_path: Path,
) -> None:
    store = _keeping_one(pool, settings_for, tmp_path)
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
    assert await store.remove_deleted_files() == 1
    first, second = await db.fetch(
        "SELECT status, file_name, sha256 FROM tidegate.backups WHERE id = ANY($1::uuid[])"
        " ORDER BY created_at",
        made,
    )
    files = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 — a test's temp dir
    assert first["status"] == "deleted" and first["file_name"] not in files
    assert second["status"] == "completed" and files == [second["file_name"]]
    assert sha256_of(tmp_path / second["file_name"]) == second["sha256"]


async def _backup(
    store: BackupStore,
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    table: str,
    import_id: uuid.UUID | None = None,
) -> uuid.UUID:
    backup_id, _ = await operations.request_backup(
        db,
        tables=[table],
        reason="retention",
        trigger="pre_import" if import_id else "request",
        import_id=import_id,
    )
    async with pool.acquire() as conn, conn.transaction():
        status, _, error = await store.create(conn, backup_id)
    assert (status, error) == ("completed", None)
    await store.remove_deleted_files()
    return backup_id


async def _statuses(db: asyncpg.Connection, ids: list[uuid.UUID]) -> list[str]:
    rows = await db.fetch("SELECT id, status FROM tidegate.backups WHERE id = ANY($1::uuid[])", ids)
    found = {r["id"]: r["status"] for r in rows}
    return [found[i] for i in ids]


async def test_retention_is_per_table_and_keeps_a_pre_import_backup_that_may_be_needed(
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    settings_for: Callable[[str], Settings],
    tmp_path: Path,
) -> None:
    """keep_last = 1: one table's backups never push out another table's, and the backup
    taken before an import stays while that import can be rolled back, without counting
    (a data_manager's 20 backups of their table deleted everyone's)."""
    store = _keeping_one(pool, settings_for, tmp_path)
    mine, theirs = (f"public.ret_{uuid.uuid4().hex[:8]}" for _ in range(2))
    for table in (mine, theirs):
        await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY)")
    import_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO tidegate.imports (id, target_table, columns, chunk_size, source, status,"
        " finished_at) VALUES ($1, $2, '{id}', 1, 'http', 'completed', now())",
        import_id,
        mine,
    )
    theirs_backup = await _backup(store, pool, db, theirs)
    pre_import = await _backup(store, pool, db, mine, import_id)
    older, newer = [await _backup(store, pool, db, mine) for _ in range(2)]
    assert await _statuses(db, [theirs_backup, pre_import, older, newer]) == [
        "completed",
        "completed",
        "deleted",
        "completed",
    ]
    # Once the import is rolled back, its backup is one like the others.
    await db.execute("UPDATE tidegate.imports SET status = 'rolled_back' WHERE id = $1", import_id)
    latest = await _backup(store, pool, db, mine)
    assert await _statuses(db, [theirs_backup, pre_import, newer, latest]) == [
        "completed",
        "deleted",
        "deleted",
        "completed",
    ]


async def test_a_backup_deleted_in_a_transaction_that_rolls_back_keeps_its_file(
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    settings_for: Callable[[str], Settings],
    tmp_path: Path,
) -> None:
    store = _keeping_one(pool, settings_for, tmp_path)
    table = f"public.ret_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY)")
    kept = await _backup(store, pool, db, table)
    file_name = await db.fetchval("SELECT file_name FROM tidegate.backups WHERE id = $1", kept)
    backup_id, _ = await operations.request_backup(
        db, tables=[table], reason="retention", trigger="request"
    )
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await store.create(conn, backup_id)  # expires `kept`, in this transaction
        await transaction.rollback()
    await store.remove_deleted_files()
    assert await _statuses(db, [kept]) == ["completed"]
    assert (tmp_path / file_name).exists()


async def test_client_programs_get_the_password_in_their_environment_not_their_arguments(
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    settings_for: Callable[[str], Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pg_dump and psql are given the URL without its password (a command line is visible
    to every user in `ps`); the password travels in PGPASSWORD. The backup and its restore
    still work."""
    settings = settings_for("loader")
    password = f"pw-{uuid.uuid4().hex}"
    parts = urlsplit(settings.database_url)
    host = parts.netloc.rpartition("@")[2]  # empty for a Unix socket (?host=…)
    with_password = parts._replace(
        netloc=f"{parts.username or 'postgres'}:{password}@{host}"
    ).geturl()
    settings = msgspec.structs.replace(
        settings, backup_dir=str(tmp_path), database_url=with_password
    )
    spawned: list[tuple[tuple[str, ...], dict[str, str]]] = []
    real = asyncio.create_subprocess_exec

    async def watched(*args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
        spawned.append((args, env or {}))
        return await real(*args, env=env, **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", watched)
    store = BackupStore(pool, settings)
    table = f"public.pw_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY)")
    await db.execute(f"INSERT INTO {table} VALUES (1), (2)")
    backup_id = await _backup(store, pool, db, table)
    await db.execute(f"DELETE FROM {table}")
    async with pool.acquire() as conn, conn.transaction():
        status, _, error = await store.restore(conn, backup_id)
    assert (status, error) == ("completed", None)
    assert await db.fetchval(f"SELECT count(*) FROM {table}") == 2
    # The session's loader runs too, and may take this backup's command from the broker and
    # dump the table itself, into its own directory: this store's programs write to
    # tmp_path, or (psql, restoring) name the table; only this store restores it.
    mine = [
        (args, env)
        for args, env in spawned
        if str(tmp_path) in " ".join(args)
        or (Path(args[0]).name == "psql" and table.split(".")[1] in " ".join(args))
    ]
    programs = {Path(args[0]).name for args, _ in mine}
    assert {"pg_dump", "psql"} <= programs
    for args, env in mine:
        assert not any(password in arg for arg in args), args
        if Path(args[0]).name in ("pg_dump", "psql"):
            assert env["PGPASSWORD"] == password
