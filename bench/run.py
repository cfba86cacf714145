"""`make bench`: raw COPY against the whole pipeline on the same file, in one run.

Generates a reproducible 1,000,000-row CSV (about 110 MB) and a 10,000-row one, starts the
stack as separate processes (embedded PostgreSQL and broker unless DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS are set), and prints rows/s, the ratio to COPY, each process's peak
RSS and the busy time of each stage (the validator's rows/s on the clean file and on one
with 2 % bad rows: bad rows must not slow it down). Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tidegate import client
from tidegate.keys import create_key
from tidegate.sample_data import TABLE_SQL, write_file
from tidegate.stack import SERVICES, Stack

DATA = Path(__file__).parent / "data"


def dataset(rows: int, bad_every: int = 0) -> Path:
    DATA.mkdir(exist_ok=True)
    path = DATA / f"customers_{rows}{f'_bad{bad_every}' if bad_every else ''}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_file(path, rows, bad_every=bad_every)
        print(
            f"generated {path.name}: {path.stat().st_size / 1e6:.1f} MB "
            f"in {time.perf_counter() - started:.1f}s"
        )
    return path


async def raw_copy(database_url: str, path: Path) -> float:
    """Seconds for asyncpg COPY of the file into a fresh table of the same shape."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLE_SQL.format(table="public.bench_copy"))
        started = time.perf_counter()
        with path.open("rb") as source:
            await conn.copy_to_table("bench_copy", source=source, format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def pipeline(
    database_url: str, api: str, path: Path, table: str
) -> tuple[float, dict[str, Any]]:
    key = await create_key(
        database_url, f"bench {table}", "data_manager", requests_per_minute=1_000_000
    )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLE_SQL.format(table=f"public.{table}"))
    finally:
        await conn.close()
    timeout = aiohttp.ClientTimeout(total=3600)
    async with client.session(key, timeout=timeout) as session:
        started = time.perf_counter()
        accepted = await client.upload(session, api, path, f"public.{table}", progress=False)
        uploaded = time.perf_counter() - started
        final = await client.follow(session, api, accepted["id"], progress=False, poll=0.1)
        elapsed = time.perf_counter() - started
    final["upload_seconds"] = uploaded
    return elapsed, final


async def _operation(
    session: aiohttp.ClientSession, api: str, method: str, path: str, **kwargs: Any
) -> tuple[float, dict[str, Any]]:
    """Start an operation and wait for it: (seconds from request to completed, the operation)."""
    started = time.perf_counter()
    op = await client.call(session, method, f"{api}/api/v1/database{path}", **kwargs)
    url = f"{api}/api/v1/database/operations/{op['id']}"
    op = await client.wait(session, url, op, poll=0.1, progress=False)
    if op["status"] != "completed":
        raise RuntimeError(f"{path}: {op}")
    return time.perf_counter() - started, op


async def recovery(database_url: str, api: str, import_id: str, table: str) -> dict[str, float]:
    """Back the imported table up, verify it, roll the import back, restore the backup:
    seconds each."""
    key = await create_key(database_url, "bench admin", "admin", requests_per_minute=1_000_000)
    timeout = aiohttp.ClientTimeout(total=3600)
    async with client.session(key, timeout=timeout) as session:
        backup_s, backup = await _operation(
            session, api, "POST", "/backups", json={"tables": [table]}
        )
        started = time.perf_counter()
        url = f"{api}/api/v1/database/verifications"
        check = await client.call(session, "POST", url, json={"tables": [table]})
        await client.wait(session, f"{url}/{check['id']}", check, poll=0.1, progress=False)
        verify_s = time.perf_counter() - started
        rollback_s, _ = await _operation(session, api, "POST", f"/imports/{import_id}/rollback")
        restore = f"/backups/{backup['backup_id']}/restore"
        restore_s, _ = await _operation(session, api, "POST", restore)
    return {
        "verify-data": verify_s,
        "backup": backup_s,
        "rollback": rollback_s,
        "restore": restore_s,
    }


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def busy_seconds(stack: Stack) -> dict[str, float]:
    """Time each consumer spent applying events (sum of tidegate_event_handle_seconds)."""
    busy: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for name in SERVICES[1:]:
            async with session.get(f"http://127.0.0.1:{stack.ports[name]}/metrics") as answer:
                text = await answer.text()
            total = 0.0
            for family in text_string_to_metric_families(text):
                if family.name == "tidegate_event_handle_seconds":
                    total += sum(
                        s.value
                        for s in family.samples
                        if s.name.endswith("_sum") and s.labels["service"] == name
                    )
            busy[name] = total
            if name == "validator":
                for family in text_string_to_metric_families(text):
                    if family.name == "tidegate_validator_phase_seconds":
                        for s in family.samples:
                            if s.name.endswith("_sum"):
                                busy[f"  {s.labels['phase']}"] = s.value
    return busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clean-only", action="store_true", help="skip the file with 2%% bad rows")
    args = parser.parse_args()
    big, small = dataset(args.rows), dataset(10_000)
    bad = None if args.clean_only else dataset(args.rows, bad_every=50)
    os.environ.setdefault("TIDEGATE_MAX_FILE_BYTES", str(1 << 30))
    os.environ.setdefault("TIDEGATE_MAX_RECORDS_PER_IMPORT", str(args.rows))
    stack = Stack(Path(".tidegate") / "bench")
    stack.start()
    try:
        copy_s = asyncio.run(raw_copy(stack.database_url, big))
        runs = [("clean", big, "bench_pipeline")]
        if bad is not None:
            runs.append(("2% bad", bad, "bench_pipeline_bad"))
        results = []
        for label, path, table in runs:
            before = asyncio.run(busy_seconds(stack))
            elapsed, final = asyncio.run(pipeline(stack.database_url, stack.api_url, path, table))
            after = asyncio.run(busy_seconds(stack))
            results.append(
                (label, elapsed, final, {k: after[k] - before.get(k, 0.0) for k in after})
            )
        clean = results[0][2]
        undo = asyncio.run(
            recovery(stack.database_url, stack.api_url, clean["id"], "public.bench_pipeline")
        )
        small_s, small_final = asyncio.run(
            pipeline(stack.database_url, stack.api_url, small, "bench_small")
        )
        rss = {name: peak_rss_mb(p.pid) for name, p in stack.processes.items()}
        if stack._broker is not None and stack._broker._process is not None:
            rss["broker (tansu)"] = peak_rss_mb(stack._broker._process.pid)
    finally:
        stack.stop()

    rows = args.rows
    print(
        f"\nfile: {big.name}, {big.stat().st_size / 1e6:.1f} MB, {rows:,} rows, "
        f"{psutil.cpu_count()} cores"
    )
    print(f"raw COPY (asyncpg, same table shape) : {copy_s:7.2f}s  {rows / copy_s:10,.0f} rows/s")
    for label, elapsed, final, busy in results:
        counts = final["counts"]
        print(
            f"pipeline, {label:<7} upload→final     : {elapsed:7.2f}s  "
            f"{rows / elapsed:10,.0f} rows/s  = {copy_s / elapsed:.2f} of COPY's rate  "
            f"[{final['status']}, loaded {counts['loaded']:,}, failed {counts['failed']:,}; "
            f"upload+parse {final['upload_seconds']:.1f}s]"
        )
        for name, seconds in busy.items():
            if seconds:
                print(
                    f"    {name:<9} busy {seconds:7.2f}s  {rows / seconds:10,.0f} rows/s"
                    f"  = {copy_s / seconds:.2f} of COPY's rate"
                )
    clean_s = results[0][1]
    for name, seconds in undo.items():
        print(
            f"{name + ' of the clean import':<38}: {seconds:7.2f}s  {rows / seconds:10,.0f} rows/s"
            f"  = {seconds / clean_s:.2f} of the import's time, {seconds / copy_s:.2f} of COPY's"
        )
    print(f"10,000-row file, upload→completed      : {small_s:7.2f}s  [{small_final['status']}]")
    print("peak RSS (VmHWM): " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))


if __name__ == "__main__":
    main()
