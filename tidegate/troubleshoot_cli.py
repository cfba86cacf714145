"""`tidegate debug record`: troubleshooting through the API (the seed's `debug:record`)."""

from __future__ import annotations

import argparse
from typing import Any

from tidegate import client
from tidegate.admin_cli import add_api_options
from tidegate.recovery_cli import run_api

DB = "/api/v1/database"


def cmd_debug_record(args: argparse.Namespace) -> int:
    async def work(session: Any) -> int:
        params = {"table": args.table, "id": args.id}
        history = await client.call(session, "GET", f"{args.api}{DB}/records", params=params)
        print(client.show(history))
        return 0 if history["current"] is not None or history["history"] else 1

    return run_api(args, work)


def add_parsers(sub: Any) -> None:
    debug = sub.add_parser("debug", help="troubleshooting tools")
    tools = debug.add_subparsers(dest="tool", required=True)
    record = tools.add_parser("record", help="a row's history: the imports that wrote it")
    record.add_argument("--table", required=True)
    record.add_argument("--id", required=True, help="the primary key (comma-separated)")
    add_api_options(record)
    record.set_defaults(run=cmd_debug_record)
