"""`tidegate rollback`, `cancel`, `export-failed`, `retry` and `backup …`: recovery through
the API, following each operation until it has finished (exit 0 if it completed, 1 if it
was refused or failed, 2 if the API refused the request)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tidegate import client
from tidegate.admin_cli import add_api_options

DB = "/api/v1/database"


async def _follow_operation(
    session: aiohttp.ClientSession, api: str, operation: dict[str, Any]
) -> dict[str, Any]:
    return await client.wait(session, f"{api}{DB}/operations/{operation['id']}", operation)


def run_api(args: argparse.Namespace, work: Any) -> int:
    """Run `work(session)` with the command's API key; 2 (the problem printed) if the API
    refused."""

    async def run() -> int:
        async with client.session(args.api_key) as session:
            try:
                code: int = await work(session)
            except client.ApiError as exc:
                print(client.show(exc.problem), file=sys.stderr)
                return 2
        return code

    return asyncio.run(run())


def _finished(operation: dict[str, Any]) -> int:
    print(client.show(operation))
    return 0 if operation["status"] == "completed" else 1


async def last_import(session: aiohttp.ClientSession, api: str) -> str:
    page = await client.call(session, "GET", f"{api}{DB}/imports", params={"limit": "1"})
    if not page["items"]:
        raise client.ApiError(404, {"title": "No imports", "detail": "this key has none"})
    return str(page["items"][0]["id"])


def cmd_rollback(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        import_id = args.import_id or await last_import(session, args.api)
        params = {"force": str(args.force).lower(), "dry_run": str(args.dry_run).lower()}
        answer = await client.call(
            session, "POST", f"{args.api}{DB}/imports/{import_id}/rollback", params=params
        )
        if args.dry_run:
            print(client.show(answer))
            return 0
        return _finished(await _follow_operation(session, args.api, answer))

    if not args.import_id and not args.last:
        print("name an import, or --last", file=sys.stderr)
        return 2
    return run_api(args, work)


def cmd_cancel(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        answer = await client.call(
            session, "POST", f"{args.api}{DB}/imports/{args.import_id}/cancel"
        )
        print(client.show(answer["import"]))
        if answer["rollback"] is None:
            return 0
        return _finished(await _follow_operation(session, args.api, answer["rollback"]))

    return run_api(args, work)


def cmd_export_failed(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        url = f"{args.api}{DB}/imports/{args.import_id}/failed"
        async with session.get(url) as response:
            if response.status != 200:
                raise client.ApiError(response.status, await response.json(content_type=None))
            data = await response.read()
            encoding = response.headers.get("Tidegate-Source-Encoding", "utf-8")
        output = Path(args.output or f"failed-{args.import_id}.csv")
        await asyncio.to_thread(output.write_bytes, data)
        rows = max(data.count(b"\n") - 1, 0)
        print(f"{rows} failed rows → {output} (UTF-8; the file was {encoding})")
        return 0

    return run_api(args, work)


def cmd_retry(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        url = f"{args.api}{DB}/imports/{args.import_id}/retry"
        data = await asyncio.to_thread(Path(args.file).read_bytes) if args.file else None
        headers = {"Content-Type": "text/csv"} if data is not None else {}
        answer = await client.call(session, "POST", url, data=data, headers=headers)
        final = await client.follow(session, args.api, answer["id"])
        print(client.show(final))
        return 0 if final["status"] in ("completed", "completed_with_errors") else 1

    return run_api(args, work)


def cmd_backup(args: argparse.Namespace) -> int:
    async def work(session: aiohttp.ClientSession) -> int:
        base = f"{args.api}{DB}/backups"
        match args.action:
            case "create":
                body = {"tables": args.table, "reason": args.reason}
                answer = await client.call(session, "POST", base, json=body)
            case "list":
                print(client.show(await client.call(session, "GET", base)))
                return 0
            case "restore":
                answer = await client.call(session, "POST", f"{base}/{args.backup_id}/restore")
            case _:
                answer = await client.call(session, "DELETE", f"{base}/{args.backup_id}")
        return _finished(await _follow_operation(session, args.api, answer))

    return run_api(args, work)


def add_parsers(sub: Any) -> None:
    rollback = sub.add_parser("rollback", help="undo an import after it committed")
    rollback.add_argument("import_id", nargs="?")
    rollback.add_argument("--last", action="store_true", help="the latest import of this key")
    rollback.add_argument("--force", action="store_true", help="overwrite rows changed since")
    rollback.add_argument("--dry-run", action="store_true", help="only say what it would do")
    cancel = sub.add_parser("cancel", help="stop a running import and undo what it loaded")
    cancel.add_argument("import_id")
    failed = sub.add_parser("export-failed", help="the rejected rows, to fix and retry")
    failed.add_argument("import_id")
    failed.add_argument("-o", "--output", help="file (default: failed-<id>.csv)")
    retry = sub.add_parser("retry", help="import the failed rows again (or a fixed file)")
    retry.add_argument("import_id")
    retry.add_argument("--file", help="the corrected file (default: the failed rows as they were)")
    backup = sub.add_parser("backup", help="create, list, restore or delete backups")
    actions = backup.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="back tables up (pg_dump)")
    create.add_argument("--table", action="append", required=True, help="repeat for more")
    create.add_argument("--reason")
    actions.add_parser("list", help="backups, newest first")
    for name in ("restore", "delete"):
        actions.add_parser(name, help=f"{name} a backup (admin)").add_argument("backup_id")
    for command, run in (
        (rollback, cmd_rollback),
        (cancel, cmd_cancel),
        (failed, cmd_export_failed),
        (retry, cmd_retry),
    ):
        add_api_options(command)
        command.set_defaults(run=run)
    for action in actions.choices.values():
        add_api_options(action)
        action.set_defaults(run=cmd_backup)
