"""Restoring a table that other tables reference (issue 21): it succeeds whenever no
referencing row would lose its parent, whatever kind of foreign key; otherwise it is
refused, naming the row, and every table is left exactly as it was. Rows the backup has
unchanged keep their xmin (a rollback of an earlier import still finds them its own)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import msgspec
import pytest

from services.loader.backups import BackupStore
from shared import operations
from shared.config import Settings

KINDS = {
    "plain": "",
    "deferrable": " DEFERRABLE",
    "deferred": " DEFERRABLE INITIALLY DEFERRED",
    "cascade": " ON DELETE CASCADE",
    "set null": " ON DELETE SET NULL",
}


@pytest.fixture
def store(
    pool: asyncpg.Pool, settings_for: Callable[[str], Settings], tmp_path: Path
) -> BackupStore:
    settings = msgspec.structs.replace(settings_for("loader"), backup_dir=str(tmp_path))
    return BackupStore(pool, settings)


async def _tables(db: asyncpg.Connection, kind: str) -> tuple[str, str]:
    s = uuid.uuid4().hex[:8]
    parent, child = f"public.parent_{s}", f"public.child_{s}"
    await db.execute(
        f"CREATE TABLE {parent} (id integer PRIMARY KEY, name text NOT NULL,"
        f" code text UNIQUE, born date);"
        f"CREATE TABLE {child} (id integer PRIMARY KEY,"
        f" parent_id integer REFERENCES {parent} (id){KINDS[kind]}, note text);"
        f"INSERT INTO {parent} VALUES (1, 'one', 'a', '2020-01-01'), (2, 'two', 'b', NULL),"
        f" (3, 'three', 'c', NULL);"
        f"INSERT INTO {child} VALUES (10, 1, 'x'), (11, 2, 'y'), (12, NULL, 'z')"
    )
    return parent, child


async def _backup(
    store: BackupStore, pool: asyncpg.Pool, db: asyncpg.Connection, table: str
) -> uuid.UUID:
    backup_id, _ = await operations.request_backup(
        db, tables=[table], reason="retention", trigger="request", import_id=None
    )
    async with pool.acquire() as conn, conn.transaction():
        status, _, error = await store.create(conn, backup_id)
    assert (status, error) == ("completed", None)
    return backup_id


async def _restore(
    store: BackupStore, pool: asyncpg.Pool, backup_id: uuid.UUID
) -> tuple[str, dict[str, object], str | None]:
    async with pool.acquire() as conn, conn.transaction():
        return await store.restore(conn, backup_id)


async def _rows(db: asyncpg.Connection, table: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY id")]


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_referenced_table_is_restored_when_no_row_loses_its_parent(
    kind: str, store: BackupStore, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    parent, child = await _tables(db, kind)
    backup_id = await _backup(store, pool, db, parent)
    backed_up = await _rows(db, parent)
    untouched = await db.fetchval(f"SELECT xmin::text FROM {parent} WHERE id = 1")
    # Since the backup: a row changed, an unreferenced one deleted, two added (one of them
    # referenced: the backup lacks it, so first the reference goes).
    await db.execute(
        f"UPDATE {parent} SET name = 'TWO', code = 'bb' WHERE id = 2;"
        f"DELETE FROM {parent} WHERE id = 3;"
        f"INSERT INTO {parent} VALUES (4, 'four', 'd', NULL), (5, 'five', 'e', NULL);"
        f"INSERT INTO {child} VALUES (13, 5, 'w'); DELETE FROM {child} WHERE id = 13"
    )
    children = await _rows(db, child)

    status, _, error = await _restore(store, pool, backup_id)

    assert (status, error) == ("completed", None)
    assert await _rows(db, parent) == backed_up
    assert await _rows(db, child) == children  # referencing rows untouched
    assert await db.fetchval(f"SELECT xmin::text FROM {parent} WHERE id = 1") == untouched


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_restore_that_would_orphan_a_row_is_refused_naming_it(
    kind: str, store: BackupStore, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    parent, child = await _tables(db, kind)
    backup_id = await _backup(store, pool, db, parent)
    await db.execute(
        f"INSERT INTO {parent} VALUES (7, 'seven', 'g', NULL);"
        f"INSERT INTO {child} VALUES (14, 7, 'needs seven');"
        f"UPDATE {parent} SET name = 'ONE' WHERE id = 1"
    )
    parents, children = await _rows(db, parent), await _rows(db, child)

    status, result, error = await _restore(store, pool, backup_id)

    assert status == "refused"
    assert result["code"] == "restore-orphans-rows"
    assert error is not None
    assert f"{child} (id = '14') references {parent} (id = '7')" in error
    assert await _rows(db, parent) == parents  # nothing changed, no cascade
    assert await _rows(db, child) == children


async def test_a_backup_of_parent_and_child_together_restores_both(
    store: BackupStore, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    parent, child = await _tables(db, "plain")
    backup_id, _ = await operations.request_backup(
        db, tables=[child, parent], reason="retention", trigger="request", import_id=None
    )
    async with pool.acquire() as conn, conn.transaction():
        assert (await store.create(conn, backup_id))[0] == "completed"
    backed_up = await _rows(db, parent), await _rows(db, child)
    await db.execute(
        f"DELETE FROM {child} WHERE id = 10; DELETE FROM {parent} WHERE id = 1;"
        f"INSERT INTO {parent} VALUES (8, 'eight', 'h', NULL);"
        f"INSERT INTO {child} VALUES (15, 8, 'new')"
    )
    status, _, error = await _restore(store, pool, backup_id)
    assert (status, error) == ("completed", None)
    assert (await _rows(db, parent), await _rows(db, child)) == backed_up


async def test_a_table_without_a_primary_key_is_restored_whole(
    store: BackupStore, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    table = f"public.loose_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {table} (v text); INSERT INTO {table} VALUES ('a'), ('a')")
    backup_id = await _backup(store, pool, db, table)
    await db.execute(f"INSERT INTO {table} VALUES ('b'); DELETE FROM {table} WHERE ctid IN"
                     f" (SELECT ctid FROM {table} WHERE v = 'a' LIMIT 1)")  # fmt: skip
    status, _, error = await _restore(store, pool, backup_id)
    assert (status, error) == ("completed", None)
    assert [r["v"] for r in await db.fetch(f"SELECT v FROM {table} ORDER BY v")] == ["a", "a"]
