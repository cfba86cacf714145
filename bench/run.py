"""`make bench`: raw COPY against the whole pipeline on the same file, in one run.

Generates a reproducible 1,000,000-row CSV (about 110 MB) and a 10,000-row one, starts the
stack as separate processes (embedded PostgreSQL, with pg_stat_statements, and broker unless
DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are set), and prints, as ratios to raw COPY measured
in the same run:

- the big file, clean and with 2 % bad rows: upload → final, each stage's busy seconds and
  rows/s, how much the stages overlapped, and PostgreSQL's time per statement kind; and the
  clean file again in the largest chunks allowed (`chunk_size=10000`; the default is 1,000);
- the 10,000-row file, upload → completed, median of 5;
- 8 keys importing a 10,000-row file each at once (the seed's workload): aggregate rows/s;
- recovery on the clean import: verify-data, backup, rollback, restore;
- each process's peak RSS;
- Debian's `pgloader` on the same files into the same table shape on the same server (on the
  2 %-bad file, on a 100,000-row file of the same kind: it retries bad rows one by one);
- bytes the services published to the broker per row, PostgreSQL WAL bytes per row
  (`pg_stat_wal`), each stage's time per chunk (p50/p95, from the services' histograms);
- the broker's resident memory after each of 20 consecutive 100,000-row imports.

`--profile` samples every service with py-spy during each run of the big file and prints
where each spends its time (collapsed stacks in bench/profiles/, for speedscope or
flamegraph.pl).
Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
from prometheus_client.parser import text_string_to_metric_families

from shared.config import DEFAULTS
from tidegate import client
from tidegate.keys import create_key
from tidegate.sample_data import HEADER, TABLE_SQL, write_file
from tidegate.stack import SERVICES, Stack

DATA = Path(__file__).parent / "data"
PROFILES = Path(__file__).parent / "profiles"
BIG_CHUNK = int(DEFAULTS["max_chunk_size"])  # the clean file again, in the largest chunks
CONCURRENT_KEYS = 8
SPY = str(Path(sys.executable).with_name("py-spy"))


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


async def checkpoint(database_url: str) -> None:
    """Write the dirty pages of earlier runs out now, so that no run pays for another's
    checkpoint (and the full-page images after it). Skipped without the privilege."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        pass
    finally:
        await conn.close()


async def raw_copy(database_url: str, path: Path) -> float:
    """Seconds for asyncpg COPY of the file into a fresh table of the same shape."""
    await checkpoint(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLE_SQL.format(table="public.bench_copy"))
        started = time.perf_counter()
        with path.open("rb") as source:
            await conn.copy_to_table("bench_copy", source=source, format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await conn.close()


PGLOADER_BAD_ROWS = 100_000  # pgloader retries a refused batch row by row: ~550 rows/s


def pgloader(database_url: str, path: Path, table: str) -> float | None:
    """Seconds for Debian's pgloader to load the file into a fresh table of the same shape
    (None when pgloader is not installed). It runs with its defaults (4 workers, batches
    of 25,000 rows), truncating nothing and creating nothing."""
    program = shutil.which("pgloader")
    if program is None:
        return None
    asyncio.run(fresh_table(database_url, table))
    asyncio.run(checkpoint(database_url))
    columns = ", ".join(HEADER)
    command = f"""LOAD CSV FROM '{path.resolve()}' ({columns})
INTO {pgloader_url(database_url)}?tablename={table} ({columns})
WITH skip header = 1, fields optionally enclosed by '"', fields escaped by double-quote,
     fields terminated by ',';
"""
    with tempfile.TemporaryDirectory() as work:
        load = Path(work) / "bench.load"
        load.write_text(command)
        started = time.perf_counter()
        done = subprocess.run(
            [program, "--quiet", "--root-dir", work, str(load)],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pgloader failed: {done.stderr[-2000:]}")
    return elapsed


def pgloader_url(database_url: str) -> str:
    """The URL in pgloader's syntax: a Unix socket directory (the embedded server's
    `?host=/dir`) is written `unix:/dir:port`."""
    parts = urllib.parse.urlsplit(database_url)
    query = urllib.parse.parse_qs(parts.query)
    user = parts.username or "postgres"
    database = parts.path.lstrip("/") or user
    if "host" in query and query["host"][0].startswith("/"):
        directory = Path(query["host"][0])
        socket = next(directory.glob(".s.PGSQL.*"))
        port = socket.name.rsplit(".", maxsplit=1)[-1]
        return f"postgresql://{user}@unix:{directory}:{port}/{database}"
    return urllib.parse.urlunsplit(parts._replace(query=""))


async def fresh_table(database_url: str, table: str) -> str:
    """A new empty table of the sample's shape in `public`; its qualified name."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLE_SQL.format(table=f"public.{table}"))
    finally:
        await conn.close()
    return f"public.{table}"


async def wal_bytes(database_url: str) -> int:
    """WAL bytes PostgreSQL has written since its statistics were reset."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT wal_bytes FROM pg_stat_wal"))
    finally:
        await conn.close()


async def pipeline(
    database_url: str,
    api: str,
    path: Path,
    table: str,
    poll: float = 0.1,
    options: dict[str, str] | None = None,
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
        accepted = await client.upload(
            session, api, path, f"public.{table}", options, progress=False
        )
        uploaded = time.perf_counter() - started
        final = await client.follow(session, api, accepted["id"], progress=False, poll=poll)
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


async def concurrent(database_url: str, api: str, path: Path) -> float:
    """Seconds for CONCURRENT_KEYS keys to import `path` each, at once, into tables of
    their own (one import per key, as the seed's limits have it)."""
    tasks = [
        pipeline(database_url, api, path, f"bench_concurrent_{n}", poll=0.05)
        for n in range(CONCURRENT_KEYS)
    ]
    started = time.perf_counter()
    finals = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    bad = [f["status"] for _, f in finals if f["status"] != "completed"]
    if bad:
        raise RuntimeError(f"concurrent imports ended {bad}")
    return elapsed


async def reset_statements(database_url: str) -> None:
    await checkpoint(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


def statement_kind(query: str) -> str:
    """A statement's kind: its first words, with the table it touches."""
    words = " ".join(query.split())
    for cut in (" FROM unnest", " VALUES", " SELECT u.", " WHERE"):
        if cut in words[20:]:
            words = words[: words.index(cut, 20)]
    return words[:90]


async def statement_times(database_url: str, top: int = 10) -> list[tuple[str, int, float]]:
    """PostgreSQL's execution time per statement kind since the reset: (kind, calls, s)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT query, calls, total_exec_time FROM pg_stat_statements"
            " WHERE query NOT LIKE '%pg_stat_statements%'"
        )
    finally:
        await conn.close()
    calls: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for row in rows:
        kind = statement_kind(row["query"])
        calls[kind] += row["calls"]
        seconds[kind] += row["total_exec_time"] / 1000
    return [(kind, calls[kind], s) for kind, s in seconds.most_common(top)]


@contextmanager
def profiling(stack: Stack, enabled: bool, label: str) -> Iterator[dict[str, Path]]:
    """py-spy sampling each service while the block runs (nothing unless `enabled`)."""
    outputs: dict[str, Path] = {}
    spies = []
    if enabled:
        PROFILES.mkdir(exist_ok=True)
        for name, process in stack.processes.items():
            run = "".join(c if c.isalnum() else "_" for c in label)
            outputs[name] = PROFILES / f"{name}-{run}.collapsed.txt"
            spies.append(
                subprocess.Popen(
                    [SPY, "record", "--pid", str(process.pid), "--rate", "40",
                     "--format", "raw", "--nonblocking", "-o", str(outputs[name])],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
    try:
        yield outputs
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)


def profile_summary(path: Path, top: int = 6) -> list[tuple[str, float]]:
    """The functions a service spent most samples in (its own time), as shares."""
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            own[stack.split(";")[-1]] += int(count)
    total = sum(own.values()) or 1
    return [(frame, n / total) for frame, n in own.most_common(top)]


def processes(stack: Stack) -> dict[str, list[psutil.Process]]:
    """Each part of the stack and its processes: the services, the broker, and PostgreSQL
    (the postmaster and its backends)."""
    found = {name: [psutil.Process(p.pid)] for name, p in stack.processes.items()}
    if stack._broker is not None and stack._broker._process is not None:
        found["broker"] = [psutil.Process(stack._broker._process.pid)]
    pidfile = stack.home / "pgdata" / "postmaster.pid"
    if pidfile.exists():
        postmaster = psutil.Process(int(pidfile.read_text().split()[0]))
        found["postgres"] = [postmaster, *postmaster.children(recursive=True)]
    return found


def cpu_seconds(stack: Stack) -> dict[tuple[str, int], float]:
    """CPU time (user + system) used so far by each process of the stack."""
    used = {}
    for name, procs in processes(stack).items():
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            used[(name, proc.pid)] = times.user + times.system
    return used


def cpu_used(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]
) -> dict[str, float]:
    """CPU seconds per part of the stack between two `cpu_seconds` readings."""
    spent: dict[str, float] = {}
    for (name, pid), seconds in after.items():
        spent[name] = spent.get(name, 0.0) + seconds - before.get((name, pid), 0.0)
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def scrape(stack: Stack) -> dict[str, str]:
    """Each service's /metrics text."""
    texts = {}
    async with aiohttp.ClientSession() as session:
        for name in SERVICES:
            async with session.get(f"http://127.0.0.1:{stack.ports[name]}/metrics") as answer:
                texts[name] = await answer.text()
    return texts


def published_bytes(texts: dict[str, str]) -> float:
    """Bytes of event values all services have sent to the broker."""
    return sum(
        sample.value
        for text in texts.values()
        for family in text_string_to_metric_families(text)
        if family.name == "tidegate_event_bytes_published"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def handle_buckets(texts: dict[str, str]) -> dict[str, dict[float, float]]:
    """Per consumer: the cumulative bucket counts of its time per event (all topics)."""
    found: dict[str, dict[float, float]] = {}
    for name, text in texts.items():
        for family in text_string_to_metric_families(text):
            if family.name != "tidegate_event_handle_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels["service"] == name:
                    bound = float(sample.labels["le"])
                    buckets = found.setdefault(name, {})
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return found


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of the observations between two readings of a histogram (the upper
    bound of the bucket it falls in, as Prometheus' histogram_quantile would start)."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0
    for bound, seen in counts:
        if total and seen >= q * total:
            return bound
    return float("nan")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
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


def measure(
    stack: Stack, label: str, path: Path, table: str, rows: int, *, profile: bool
) -> tuple[Any, ...]:
    """One import of the big file, with what each part of the stack spent on it."""
    url, api = stack.database_url, stack.api_url
    before = asyncio.run(busy_seconds(stack))
    texts_before = asyncio.run(scrape(stack))
    wal_before = asyncio.run(wal_bytes(url))
    asyncio.run(reset_statements(url))
    cpu_before = cpu_seconds(stack)
    with profiling(stack, profile, label) as profiles:
        elapsed, final = asyncio.run(pipeline(url, api, path, table))
    cpu = cpu_used(cpu_before, cpu_seconds(stack))
    after = asyncio.run(busy_seconds(stack))
    texts_after = asyncio.run(scrape(stack))
    carried = {
        "broker bytes/row": (published_bytes(texts_after) - published_bytes(texts_before)) / rows,
        "WAL bytes/row": (asyncio.run(wal_bytes(url)) - wal_before) / rows,
    }
    hist_before, hist_after = handle_buckets(texts_before), handle_buckets(texts_after)
    per_chunk = {
        name: (
            quantile(hist_before.get(name, {}), buckets, 0.5),
            quantile(hist_before.get(name, {}), buckets, 0.95),
        )
        for name, buckets in hist_after.items()
    }
    busy = {k: after[k] - before.get(k, 0.0) for k in after}
    statements = asyncio.run(statement_times(url))
    return (label, elapsed, final, busy, statements, profiles, cpu, carried, per_chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clean-only", action="store_true", help="skip the file with 2%% bad rows")
    parser.add_argument("--profile", action="store_true", help="py-spy each service")
    parser.add_argument(
        "--broker-imports", type=int, default=20, help="100,000-row imports for broker memory"
    )
    args = parser.parse_args()
    big, small = dataset(args.rows), dataset(10_000)
    bad = None if args.clean_only else dataset(args.rows, bad_every=50)
    bad_sample = None if args.clean_only else dataset(PGLOADER_BAD_ROWS, bad_every=50)
    medium = dataset(100_000) if args.broker_imports else None
    os.environ.setdefault("TIDEGATE_MAX_FILE_BYTES", str(1 << 30))
    os.environ.setdefault("TIDEGATE_MAX_RECORDS_PER_IMPORT", str(max(args.rows, 100_000)))
    stack = Stack(Path(".tidegate") / "bench", pg_preload=("pg_stat_statements",))
    stack.start()
    url, api = stack.database_url, stack.api_url
    peers: dict[str, tuple[int, float | None]] = {}
    broker_rss: list[float] = []
    try:
        copy_s = asyncio.run(raw_copy(url, big))
        peers["clean"] = (args.rows, pgloader(url, big, "bench_pgloader"))
        if bad_sample is not None:
            peers["2% bad"] = (PGLOADER_BAD_ROWS, pgloader(url, bad_sample, "bench_pgloader_bad"))
        runs = [("clean", big, "bench_pipeline")]
        if bad is not None:
            runs.append(("2% bad", bad, "bench_pipeline_bad"))
        results = [
            measure(stack, label, path, table, args.rows, profile=args.profile)
            for label, path, table in runs
        ]
        clean = results[0][2]
        undo = asyncio.run(recovery(url, api, clean["id"], "public.bench_pipeline"))
        small_runs = [
            asyncio.run(pipeline(url, api, small, f"bench_small_{n}", poll=0.01))[0]
            for n in range(5)
        ]
        concurrent_s = asyncio.run(concurrent(url, api, small))
        broker = stack._broker._process if stack._broker is not None else None
        if medium is not None and broker is not None:
            print(f"broker RSS after each of {args.broker_imports} 100,000-row imports:")
            for n in range(args.broker_imports):
                asyncio.run(pipeline(url, api, medium, f"bench_broker_{n}"))
                broker_rss.append(rss_mb(broker.pid))
                print(f"  import {n + 1:2}: {broker_rss[-1]:6.0f} MB", flush=True)
        rss = {name: peak_rss_mb(p.pid) for name, p in stack.processes.items()}
        if broker is not None:
            rss["broker (tansu)"] = peak_rss_mb(broker.pid)
        # Last: its chunks are ten times the default's, and so is what a service holds.
        big_chunks = {"chunk_size": str(BIG_CHUNK)}
        asyncio.run(checkpoint(url))
        tuned_s = asyncio.run(pipeline(url, api, big, "bench_big_chunks", options=big_chunks))[0]
    finally:
        stack.stop()
    report(args.rows, big, copy_s, results, undo, small_runs, concurrent_s, rss)
    report_peers(args.rows, copy_s / args.rows, results, peers, broker_rss, tuned_s)


def report_peers(
    total_rows: int,
    copy_row_s: float,
    results: list[Any],
    peers: dict[str, tuple[int, float | None]],
    broker_rss: list[float],
    tuned_s: float,
) -> None:
    """pgloader beside the pipeline (and beside the clean file cut in the largest chunks),
    and the broker's memory over consecutive imports."""
    rows = {label: elapsed for label, elapsed, *_ in results}
    rate = total_rows / tuned_s
    line = (
        f"pipeline, clean, chunk_size={BIG_CHUNK:,}: {tuned_s:7.2f}s  {rate:10,.0f} rows/s"
        f"  = {copy_row_s * rate:.2f} of COPY's rate"
    )
    count, seconds = peers.get("clean", (0, None))
    if seconds:
        line += f"; {rate / (count / seconds):.2f} x pgloader's"
    print(line)
    for label, (count, seconds) in peers.items():
        if seconds is None:
            print(
                f"pgloader, {label}: not installed (`sh scripts/system-deps.sh bench` installs it)"
            )
            continue
        rate = count / seconds
        line = (
            f"pgloader, {label:<7} ({count:,} rows)     : {seconds:7.2f}s  {rate:10,.0f} rows/s"
            f"  = {copy_row_s * rate:.2f} of COPY's rate"
        )
        if label in rows:
            mine = total_rows / rows[label]
            line += f"; the pipeline's rate is {mine / rate:.2f} x pgloader's"
        print(line)
    if broker_rss:
        print(
            f"broker RSS over {len(broker_rss)} imports of 100,000 rows: first {broker_rss[0]:.0f}"
            f" MB, last {broker_rss[-1]:.0f} MB, max {max(broker_rss):.0f} MB"
        )


def report(
    rows: int,
    big: Path,
    copy_s: float,
    results: list[Any],
    undo: dict[str, float],
    small_runs: list[float],
    concurrent_s: float,
    rss: dict[str, float],
) -> None:
    copy_rate = rows / copy_s
    print(
        f"\nfile: {big.name}, {big.stat().st_size / 1e6:.1f} MB, {rows:,} rows, "
        f"{psutil.cpu_count()} cores"
    )
    print(f"raw COPY (asyncpg, same table shape) : {copy_s:7.2f}s  {copy_rate:10,.0f} rows/s")
    for label, elapsed, final, busy, statements, profiles, cpu, carried, per_chunk in results:
        counts = final["counts"]
        print(
            f"pipeline, {label:<7} upload→final     : {elapsed:7.2f}s  "
            f"{rows / elapsed:10,.0f} rows/s  = {copy_s / elapsed:.2f} of COPY's rate  "
            f"[{final['status']}, loaded {counts['loaded']:,}, failed {counts['failed']:,}; "
            f"upload+parse {final['upload_seconds']:.1f}s]"
        )
        stages = {k: v for k, v in busy.items() if not k.startswith(" ")}
        for name, seconds in busy.items():
            if seconds:
                print(
                    f"    {name:<9} busy {seconds:7.2f}s  {rows / seconds:10,.0f} rows/s"
                    f"  = {copy_s / seconds:.2f} of COPY's rate"
                )
        print(
            f"    overlap: stages busy {sum(stages.values()):.1f}s in {elapsed:.1f}s of wall"
            f" time = {sum(stages.values()) / elapsed:.2f} stages at work on average; the"
            f" busiest ({max(stages, key=stages.__getitem__)}) alone is"
            f" {max(stages.values()) / elapsed:.0%} of the wall time"
        )
        print(
            f"    CPU seconds ({sum(cpu.values()):.1f} in all,"
            f" of {elapsed * psutil.cpu_count():.1f} available): "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        )
        print("    " + ", ".join(f"{k} {v:,.0f}" for k, v in carried.items()))
        print(
            "    time per event (p50/p95, histogram bucket bounds): "
            + ", ".join(f"{k} {lo * 1000:g}/{hi * 1000:g} ms" for k, (lo, hi) in per_chunk.items())
        )
        print("    PostgreSQL execution time by statement kind (pg_stat_statements):")
        for kind, calls, seconds in statements:
            print(f"      {seconds:7.2f}s {calls:8,} calls  {kind}")
        for name, path in profiles.items():
            print(f"    profile of {name} (own time; all of it: {path}):")
            for frame, share in profile_summary(path):
                print(f"      {share:6.1%}  {frame[:110]}")
    clean_s = results[0][1]
    for name, seconds in undo.items():
        print(
            f"{name + ' of the clean import':<38}: {seconds:7.2f}s  {rows / seconds:10,.0f} rows/s"
            f"  = {seconds / clean_s:.2f} of the import's time, {seconds / copy_s:.2f} of COPY's"
        )
    print(
        f"10,000-row file, upload→completed      : {statistics.median(small_runs):7.2f}s"
        f" median of 5 ({', '.join(f'{s:.2f}' for s in small_runs)})"
    )
    total = CONCURRENT_KEYS * 10_000
    print(
        f"{CONCURRENT_KEYS} keys x 10,000 rows at once           : {concurrent_s:7.2f}s"
        f"  {total / concurrent_s:10,.0f} rows/s  = {total / concurrent_s / copy_rate:.2f}"
        " of COPY's rate"
    )
    print(
        "peak RSS (VmHWM): "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items())
        + f"; the stack {sum(rss.values()):.0f} MB"
    )


if __name__ == "__main__":
    main()
