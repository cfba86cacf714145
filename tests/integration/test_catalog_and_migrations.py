"""Table definitions read from the real catalog; migrations applied once."""

from __future__ import annotations

import uuid

import asyncpg

from services.validator import repository
from shared.catalog import load_table
from shared.db import migrate, migration_files


async def test_column_definitions_come_from_the_catalog(db: asyncpg.Connection) -> None:
    await db.execute("""
        DROP TABLE IF EXISTS public.catalog_probe;
        DROP DOMAIN IF EXISTS public.short_code;
        CREATE DOMAIN public.short_code AS varchar(5) NOT NULL;
        CREATE TABLE public.catalog_probe (
            id integer GENERATED ALWAYS AS IDENTITY,
            code public.short_code,
            name varchar(40) NOT NULL,
            amount numeric(12, 2),
            created timestamptz NOT NULL DEFAULT now(),
            doubled integer GENERATED ALWAYS AS (id * 2) STORED,
            PRIMARY KEY (id)
        );
        ALTER TABLE public.catalog_probe DROP COLUMN amount;
        ALTER TABLE public.catalog_probe ADD COLUMN amount numeric(12, 2);
    """)
    table = await load_table(db, "catalog_probe", ["public"])
    assert table is not None
    assert [c.name for c in table.columns] == ["id", "code", "name", "created", "amount"]
    code, name, amount = table.column("code"), table.column("name"), table.column("amount")
    assert (code.type_name, code.max_length, code.required) == ("varchar", 5, True)
    assert (name.max_length, name.required, name.cast_sql) == (40, True, "character varying")
    assert (amount.precision, amount.scale, amount.required) == (12, 2, False)
    assert not table.column("id").required
    assert not table.column("created").required
    assert table.primary_key == ("id",)
    assert await load_table(db, "public.catalog_probe", ["other"]) is None
    assert await load_table(db, "tidegate.imports", ["public"]) is None


async def test_migrations_apply_once(db: asyncpg.Connection) -> None:
    assert await migrate(db) == []
    versions = [
        r["version"]
        for r in await db.fetch("SELECT version FROM tidegate.schema_migrations ORDER BY version")
    ]
    assert versions == [v for v, _, _ in migration_files()]


async def test_key_claims_recorded_before_packing_are_read_the_same(
    db: asyncpg.Connection, database_url: str
) -> None:
    """Migration 0014 packs the claims an unfinished import recorded as arrays: a validator
    started after the upgrade rebuilds the same claims from them."""
    name = f"pack_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(database_url, database=name)
    try:
        await conn.execute("CREATE SCHEMA tidegate")
        for version, _, sql in migration_files():
            if version == 14:
                import_id = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO tidegate.import_key_chunks (import_id, seq, key_no, digests,"
                    " lines) VALUES ($1, 3, 0, $2, $3), ($1, 4, 0, '{}', '{}')",
                    import_id,
                    [-(2**63), -1, 0, 2**63 - 1],
                    [2, 3, 2**31 - 1, 40],
                )
            await conn.execute(sql)
        claims = await repository.claimed_chunks(conn, import_id)
    finally:
        await conn.close()
        await db.execute(f"DROP DATABASE {name}")
    assert [(seq, key_no, d.tolist(), lines.tolist()) for seq, key_no, d, lines in claims] == [
        (3, 0, [-(2**63), -1, 0, 2**63 - 1], [2, 3, 2**31 - 1, 40]),
        (4, 0, [], []),
    ]
