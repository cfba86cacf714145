"""`tidegate verify-data`, `logs`, `sync status` and `debug record`: verification and
troubleshooting through the API (the seed's `verify-data`, `logs:import`, `sync:status` and
`debug:record`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tidegate import client
from tidegate.admin_cli import add_api_options
from tidegate.recovery_cli import last_import, run_api

DB = "/api/v1/database"
RECONNECTS = 20
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=120)


def cmd_debug_record(args: argparse.Namespace) -> int:
    """The row's history, and (unless --no-verify) whether it passes verification now: a
    verification of that one row, its result under `verification`."""

    async def work(session: Any) -> int:
        params = {"table": args.table, "id": args.id}
        history = await client.call(session, "GET", f"{args.api}{DB}/records", params=params)
        if history["current"] is not None and args.verify:
            body = {"tables": [history["table"]], "key": history["key"]}
            url = f"{args.api}{DB}/verifications"
            verification = await client.call(session, "POST", url, json=body)
            verification = await client.wait(
                session, f"{args.api}{verification['links']['self']}", verification
            )
            report = (verification["result"] or [{}])[0]
            history["verification"] = {
                "id": verification["id"],
                "passes": verification["passed"],
                "findings": report.get("sample", []),
                "error": verification["error"],
            }
        print(client.show(history))
        return 0 if history["current"] is not None or history["history"] else 1

    return run_api(args, work)


def line(event: dict[str, Any]) -> str:
    """One event of a timeline as a log line."""
    seq = f" chunk {event['seq']}" if event["seq"] is not None else ""
    detail = event["detail"] or {}
    shown = " ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
    when = f"{event['at']} +{event['elapsed']:>8.3f}s"
    return f"{when} {event['service']:<9} {event['kind']}{seq} {shown}"


async def follow(session: aiohttp.ClientSession, url: str) -> bool:
    """Print the stream's events as they come (reconnecting with Last-Event-ID after a
    broken connection); True once it ended with the import's final state."""
    seen: set[str] = set()
    last: str | None = None
    for _ in range(RECONNECTS):
        headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last} if last else {})
        try:
            async with session.get(url, headers=headers, timeout=STREAM_TIMEOUT) as response:
                if response.status != 200:
                    raise client.ApiError(response.status, await response.json(content_type=None))
                event_id, kind = None, None
                async for raw in response.content:
                    text = raw.decode().rstrip("\n")
                    if text.startswith("id: "):
                        event_id = text[4:]
                    elif text.startswith("event: "):
                        kind = text[7:]
                    elif text.startswith("data: ") and kind == "end":
                        return True
                    elif text.startswith("data: ") and event_id not in seen:
                        seen.add(str(event_id))
                        last = event_id
                        print(line(json.loads(text[6:])), flush=True)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError):
            await asyncio.sleep(1)
    return False


def cmd_logs(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        import_id = args.import_id or await last_import(session, args.api)
        url = f"{args.api}{DB}/imports/{import_id}/events"
        if args.follow:
            return 0 if await follow(session, url) else 1
        for event in (await client.call(session, "GET", url))["items"]:
            print(line(event))
        return 0

    if not args.import_id and not args.last:
        print("name an import, or --last", file=sys.stderr)
        return 2
    return run_api(args, work)


def render_status(status: dict[str, Any]) -> str:
    """The status as one screen of text."""
    out = [
        f"healthy: {status['healthy']}"
        + (f"  (down: {', '.join(status['services_down'])})" if status["services_down"] else "")
    ]
    out.append("instances:")
    for i in status["instances"]:
        state = "up  " if i["up"] else "LOST"
        lags = ", ".join(f"{c['service']} lag {c['lag']}" for c in i["consumers"])
        out.append(
            f"  {state} {i['instance']:<40} v{i['version']}  last heartbeat"
            f" {i['silent_seconds']}s ago  {lags}"
        )
    lag = status["consumer_lag"]
    out.append("consumer lag (broker):" + ("" if lag["ok"] else f" unknown: {lag['error']}"))
    for group, per_topic in lag["groups"].items():
        out.append(f"  {group:<20} " + ", ".join(f"{t} {n}" for t, n in per_topic.items()))
    outbox, dead = status["outbox"], status["dead_letters"]
    out.append(f"outbox: {outbox['pending']} pending (oldest {outbox['oldest_seconds']}s)")
    out.append(f"dead letters: {dead['last_hour']} in the last hour, {dead['last_day']} today")
    out.append(f"imports running: {len(status['imports_running'])}")
    for r in status["imports_running"]:
        eta = f"ETA {r['eta_seconds']}s" if r["eta_seconds"] is not None else "ETA ?"
        out.append(
            f"  {r['id']} {r['table']} {r['status']} {r['done']}/{r['rows']}"
            f" {r['rows_per_second']} rows/s {eta}"
        )
    out.append("recent failures:")
    out += [f"  {f['at']} {f['what']} {f['id']} {f['status']}: {f['error']}"
            for f in status["recent_failures"]]  # fmt: skip
    return "\n".join(out)


def cmd_sync_status(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        status = await client.call(session, "GET", f"{args.api}/api/v1/status")
        print(client.show(status) if args.format == "json" else render_status(status))
        return 0 if status["healthy"] else 1

    return run_api(args, work)


def _values(key: dict[str, Any] | None) -> str:
    """`id = 101` (a key's columns and values), not a Python repr."""
    return ", ".join(f"{name} = {value}" for name, value in (key or {}).items())


def _cell(text: str) -> str:
    """Text in a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(verification: dict[str, Any]) -> str:
    """The verification as a human-readable report."""
    out = [f"# Verification {verification['id']}", ""]
    out.append(f"- passed: **{verification['passed']}**")
    out.append(f"- asked at {verification['created_at']}, done at {verification['finished_at']}")
    for t in verification["result"] or []:
        out += ["", f"## {t['table']}", ""]
        out.append("| metric | value |")
        out.append("|---|---|")
        for name in ("total_records", "failed_records", "duplicate_count", "rows_per_second"):
            out.append(f"| {name} | {t[name]} |")
        for name in ("missing_required_fields", "invalid_format_fields"):
            fields = ", ".join(f"{f['field']}: {f['count']}" for f in t[name]) or "none"
            out.append(f"| {name} | {fields} |")
        for check, count in t["checks"].items():
            out.append(f"| check `{check}` | {count} |")
        if t["sample"]:
            out += ["", "| check | key | column | code | message |", "|---|---|---|---|---|"]
            for f in t["sample"]:
                message = f["message"]
                if f.get("rows"):
                    message += ": " + "; ".join(_values(r) for r in f["rows"])
                out.append(
                    f"| {f['check']} | {_cell(_values(f['key']))} | {f['column'] or ''} |"
                    f" {f['code']} | {_cell(message)} |"
                )
    return "\n".join(out) + "\n"


def rows_checked(verification: dict[str, Any]) -> tuple[int, int, str] | None:
    """For the progress bar: rows checked of the table in hand, of about how many (once it
    has finished: of every table)."""
    progress = verification.get("progress")
    if progress:
        what = f"{progress['table_name']} ({progress['tables_done'] + 1}/"
        what += f"{len(verification['tables'])})"
        return progress["rows_checked"], progress["rows_estimated"], what
    if verification.get("result"):
        rows = sum(t["total_records"] for t in verification["result"])
        return rows, rows, "all tables"
    return None


def cmd_verify_data(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        url = f"{args.api}{DB}/verifications"
        body = {"tables": args.table} if args.table else {}
        verification = await client.call(session, "POST", url, json=body)
        verification = await client.wait(
            session,
            f"{args.api}{verification['links']['self']}",
            verification,
            measure=rows_checked,
        )
        if args.report:
            path = Path(args.report)
            await asyncio.to_thread(path.write_text, json.dumps(verification, indent=2) + "\n")
            await asyncio.to_thread(path.with_suffix(".md").write_text, markdown(verification))
        if args.format == "json":
            print(client.show(verification))
        else:
            print(markdown(verification), end="")
        if verification["status"] != "completed":
            return 2
        return 0 if verification["passed"] else 1

    return run_api(args, work)


def add_parsers(sub: Any) -> None:
    verify = sub.add_parser("verify-data", help="check tables' rows against the import rules")
    verify.add_argument("--table", action="append", help="one table (repeat; default: all)")
    verify.add_argument("--report", help="write the report here (JSON) and beside it (.md)")
    verify.add_argument("--format", choices=["text", "json"], default="text")
    add_api_options(verify)
    verify.set_defaults(run=cmd_verify_data)
    sync = sub.add_parser("sync", help="is everything healthy and moving?")
    sync_tools = sync.add_subparsers(dest="tool", required=True)
    status = sync_tools.add_parser("status", help="services, lag, outbox, running imports")
    status.add_argument("--format", choices=["text", "json"], default="text")
    add_api_options(status)
    status.set_defaults(run=cmd_sync_status)
    logs = sub.add_parser("logs", help="an import's timeline (--follow: live)")
    logs.add_argument("import_id", nargs="?")
    logs.add_argument("--last", action="store_true", help="the latest import of this key")
    logs.add_argument("--follow", "-f", action="store_true", help="stream until it finishes")
    add_api_options(logs)
    logs.set_defaults(run=cmd_logs)
    debug = sub.add_parser("debug", help="troubleshooting tools")
    tools = debug.add_subparsers(dest="tool", required=True)
    record = tools.add_parser("record", help="a row's history: the imports that wrote it")
    record.add_argument("--table", required=True)
    record.add_argument("--id", required=True, help="the primary key (comma-separated)")
    record.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="do not check whether the row passes verification now",
    )
    add_api_options(record)
    record.set_defaults(run=cmd_debug_record)
