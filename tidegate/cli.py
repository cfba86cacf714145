"""The `tidegate` command: run the stack, import files, follow imports."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import sys
from importlib import resources
from pathlib import Path

import asyncpg

from shared.db import migrate
from tidegate import admin_cli, client, recovery_cli, resumable, split_cli, troubleshoot_cli
from tidegate.keys import create_key
from tidegate.sample_data import TABLE_SQL
from tidegate.stack import Stack

DEMO_TABLE = "public.demo_customers"


def _home() -> Path:
    return Path(os.environ.get("TIDEGATE_HOME", ".tidegate"))


async def _prepare_demo_table(database_url: str) -> None:
    """The demo's own table, recreated each run so the sample always loads cleanly."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLE_SQL.format(table=DEMO_TABLE))
    finally:
        await conn.close()


async def _import_and_follow(
    api: str,
    api_key: str | None,
    path: Path,
    table: str,
    options: dict[str, str] | None = None,
    *,
    resume: bool = False,
) -> int:
    async with client.session(api_key) as session:
        try:
            accepted = await resumable.upload(session, api, path, table, options, resume=resume)
        except client.ApiError as exc:
            print(client.show(exc.problem), file=sys.stderr)
            return 2
        print(
            f"accepted import {accepted['id']} ({accepted['counts']['file_rows']} rows, "
            f"{accepted['chunks']['total']} chunks)"
        )
        final = await client.follow(session, api, accepted["id"])
        print(client.show(final))
        summary = await client.report(session, api, accepted["id"])
        print(client.show({k: v for k, v in summary.items() if k not in ("links", "import_id")}))
        if final["counts"]["failed"] or summary["warning_count"]:
            errors = await client.row_errors(session, api, accepted["id"])
            print(f"first row errors ({errors['total']} in all):")
            for error in errors["items"]:
                print(
                    f"  line {error['line']}, {error['column']}: {error['severity']} "
                    f"{error['code']}: {error['message']} (value {error['value']!r})"
                )
        return 0 if final["status"] == "completed" else 1


def _print_first_admin_key(stack: Stack) -> None:
    if stack.first_admin_key:
        print(f"first admin key (shown once, keep it): {stack.first_admin_key}")
    else:
        print("admin keys exist already (their secrets are never shown again); for another:")
        print(f"  DATABASE_URL={shlex.quote(stack.database_url)} {_self()} keys bootstrap")


def _self() -> str:
    """This CLI as a command to paste: `tidegate` if the shell finds it, else its path."""
    if shutil.which("tidegate") or Path(sys.argv[0]).name != "tidegate":
        return "tidegate"
    return shlex.quote(sys.argv[0])


async def _demo_importer(api: str, admin_key: str) -> tuple[list[str], str]:
    """A data_manager key for the demo's table, made through the API: (the ids of the demo's
    keys, to revoke at the end, and the new key's token)."""
    async with client.session(admin_key) as session:
        admin = await client.call(session, "GET", f"{api}/api/v1/me")
        created = await client.call(
            session,
            "POST",
            f"{api}/api/v1/keys",
            json={"name": "demo importer", "role": "data_manager", "tables": [DEMO_TABLE]},
        )
    print(f"created data_manager key {created['prefix']}… for {DEMO_TABLE} via POST /api/v1/keys")
    return [created["id"], admin["id"]], created["key"]


async def _revoke(api: str, admin_key: str, key_ids: list[str]) -> None:
    async with client.session(admin_key) as session:
        for key_id in key_ids:
            await client.call(session, "DELETE", f"{api}/api/v1/keys/{key_id}")


def cmd_demo(args: argparse.Namespace) -> int:
    sample = Path(str(resources.files("tidegate") / "samples" / "demo_customers.csv"))
    stack = Stack(_home())
    stack.start()
    try:
        print(
            f"stack up: API {stack.api_url}, PostgreSQL {stack.database_url}, "
            f"broker {stack.bootstrap}"
        )
        _print_first_admin_key(stack)
        asyncio.run(_prepare_demo_table(stack.database_url))
        admin_key = asyncio.run(create_key(stack.database_url, "demo admin"))
        demo_keys, importer_key = asyncio.run(_demo_importer(stack.api_url, admin_key))
        code = asyncio.run(_import_and_follow(stack.api_url, importer_key, sample, DEMO_TABLE))
        asyncio.run(_revoke(stack.api_url, admin_key, demo_keys))
        print("revoked the demo's keys (DELETE /api/v1/keys/{id})")
        count = asyncio.run(_count_rows(stack.database_url, DEMO_TABLE))
        print(f"{DEMO_TABLE} now holds {count} rows")
    finally:
        exits = stack.stop()
    unclean = {name: rc for name, rc in exits.items() if rc != 0}
    if unclean:
        print(f"services exited uncleanly: {unclean}", file=sys.stderr)
        return 1
    print("all services stopped cleanly")
    return code


async def _count_rows(database_url: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        schema, name = table.split(".")
        return int(
            await conn.fetchval(
                f'SELECT count(*) FROM "{schema}"."{name}"'  # noqa: S608 — fixed demo table
            )
        )
    finally:
        await conn.close()


def cmd_dev(args: argparse.Namespace) -> int:
    stack = Stack(_home(), gateway_port=args.port)
    stack.start()
    print(f"tidegate is running. API: {stack.api_url}/api/v1/database  (Ctrl-C stops)")
    _print_first_admin_key(stack)
    print(f"  DATABASE_URL={stack.database_url}")
    print(f"  KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap}")
    print(f"  logs: {_home() / 'logs'}")
    print(f"  backups: {stack.service_env()['TIDEGATE_BACKUP_DIR']}")
    print(
        "  try: curl -X POST -H 'Authorization: Bearer <key>' -H 'Content-Type: text/csv' "
        f"--data-binary @file.csv '{stack.api_url}/api/v1/database/import?table=<table>'"
    )
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop:
            signal.pause()
    finally:
        print("stopping…")
        exits = stack.stop()
    print("exit codes: " + ", ".join(f"{name}={rc}" for name, rc in exits.items()))
    return 0 if not any(exits.values()) else 1


def cmd_import(args: argparse.Namespace) -> int:
    options = {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in (
            ("chunk_size", args.chunk_size),
            ("validate_only", args.validate_only),
            ("dry_run", args.dry_run),
            ("on_duplicate", args.on_duplicate),
            ("encoding", args.encoding),
            ("delimiter", args.delimiter),
            ("auto_retry", args.auto_retry),
            ("atomic", args.atomic),
            ("backup", args.backup),
        )
        if value
    }
    if args.no_rollback_on_failure:
        options["rollback_on_failure"] = "false"
    if args.split:
        try:
            return asyncio.run(
                split_cli.import_split(args.api, args.api_key, Path(args.file), args.table, options)
            )
        except (client.ApiError, split_cli.SplitError) as exc:
            print(exc, file=sys.stderr)
            return 2
    return asyncio.run(
        _import_and_follow(
            args.api, args.api_key, Path(args.file), args.table, options, resume=args.resume
        )
    )


def cmd_status(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with client.session(args.api_key) as session:
            path = f"/imports/{args.import_id}" if args.import_id else "/imports"
            async with session.get(f"{args.api}/api/v1/database{path}") as response:
                print(client.show(await response.json(content_type=None)))
                return 0 if response.status == 200 else 1

    return asyncio.run(run())


def cmd_export(args: argparse.Namespace) -> int:
    async def run() -> int:
        params = {"table": args.table} | ({"columns": args.columns} if args.columns else {})
        async with client.session(args.api_key) as session:
            try:
                rows = await client.export(
                    session, args.api, params, Path(args.output or f"{args.table}.csv")
                )
            except client.ApiError as exc:
                print(client.show(exc.problem), file=sys.stderr)
                return 2
        print(f"exported {rows} rows")
        return 0

    return asyncio.run(run())


def cmd_migrate(_: argparse.Namespace) -> int:
    async def run() -> None:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            applied = await migrate(conn)
            print("applied: " + (", ".join(applied) or "nothing, up to date"))
        finally:
            await conn.close()

    if not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    asyncio.run(run())
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tidegate", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "demo", help="start the stack, import the bundled sample, print the outcome"
    ).set_defaults(run=cmd_demo)
    dev = sub.add_parser("dev", help="run the stack until Ctrl-C")
    dev.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    dev.set_defaults(run=cmd_dev)
    imp = sub.add_parser("import", help="import a CSV file through the API and follow it")
    imp.add_argument("file")
    imp.add_argument("--table", required=True)
    imp.add_argument(
        "--resume",
        action="store_true",
        help="go on with this file's unfinished upload (after the process died); a cut"
        " connection is resumed by itself",
    )
    imp.add_argument(
        "--chunk-size", "--checkpoint-interval", type=int, help="records committed at once"
    )
    mode = imp.add_mutually_exclusive_group()
    mode.add_argument("--validate-only", action="store_true", help="check; load nothing")
    mode.add_argument("--dry-run", action="store_true", help="load, then roll back")
    imp.add_argument("--on-duplicate", choices=["reject", "skip", "update"])
    imp.add_argument(
        "--encoding", help="e.g. shift_jis, koi8-r, windows-1250 (default: detected by the gateway)"
    )
    imp.add_argument("--delimiter", help=", ; | or tab (default: sniffed)")
    imp.add_argument(
        "--split",
        action="store_true",
        help="a file over the key's record limit: import it in parts, one after another"
        " (run again after an interruption: no part is imported twice)",
    )
    imp.add_argument("--auto-retry", type=int, help="attempts per refused chunk (default 3)")
    imp.add_argument("--atomic", action="store_true", help="any rejected row: keep nothing")
    imp.add_argument("--backup", action="store_true", help="back the table up first")
    imp.add_argument(
        "--no-rollback-on-failure", action="store_true", help="keep what a failed import loaded"
    )
    admin_cli.add_api_options(imp)
    imp.set_defaults(run=cmd_import)
    status = sub.add_parser("status", help="show one import, or the latest imports")
    status.add_argument("import_id", nargs="?")
    admin_cli.add_api_options(status)
    status.set_defaults(run=cmd_status)
    export = sub.add_parser("export", help="download a table as CSV (export permission)")
    export.add_argument("--table", required=True)
    export.add_argument("--columns", help="comma-separated (default: all)")
    export.add_argument("-o", "--output", help="file (default: <table>.csv)")
    admin_cli.add_api_options(export)
    export.set_defaults(run=cmd_export)
    admin_cli.add_parsers(sub)
    recovery_cli.add_parsers(sub)
    troubleshoot_cli.add_parsers(sub)
    sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)").set_defaults(
        run=cmd_migrate
    )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
