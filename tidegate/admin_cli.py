"""`tidegate keys …` and `tidegate audit`: administration through the API (with an admin
key in --api-key / TIDEGATE_API_KEY), and `keys bootstrap` straight in the database."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from shared.api_keys import ROLES
from tidegate import client
from tidegate.keys import create_key

DEFAULT_API = os.environ.get("TIDEGATE_API", "http://127.0.0.1:8080")


def add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=DEFAULT_API, help="gateway URL ($TIDEGATE_API)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TIDEGATE_API_KEY"),
        help="tg_… key ($TIDEGATE_API_KEY)",
    )


def _request(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> int:
    async def run() -> int:
        async with client.session(args.api_key) as session:
            try:
                body = await client.call(session, method, f"{args.api}/api/v1{path}", **kwargs)
            except client.ApiError as exc:
                print(client.show(exc.problem), file=sys.stderr)
                return 2
        print(client.show(body))
        return 0

    return asyncio.run(run())


def cmd_keys_create(args: argparse.Namespace) -> int:
    spec = {
        "name": args.name,
        "role": args.role,
        "team": args.team,
        "tables": args.table or None,
        "requests_per_minute": args.requests_per_minute,
        "concurrent_imports": args.concurrent_imports,
        "max_records_per_import": args.max_records,
    }
    return _request(args, "POST", "/keys", json={k: v for k, v in spec.items() if v is not None})


def cmd_keys_list(args: argparse.Namespace) -> int:
    params = {"include_revoked": "true"} if args.all else {}
    return _request(args, "GET", "/keys", params=params)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    params = {"grace_seconds": str(args.grace_seconds)}
    return _request(args, "POST", f"/keys/{args.key_id}/rotate", params=params)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    return _request(args, "DELETE", f"/keys/{args.key_id}")


def cmd_imports_fail(args: argparse.Namespace) -> int:
    params = {"reason": args.reason} if args.reason else {}
    return _request(args, "POST", f"/database/imports/{args.import_id}/fail", params=params)


def cmd_keys_bootstrap(args: argparse.Namespace) -> int:
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    token = asyncio.run(create_key(url, args.name, "admin"))
    print(f"admin key (shown once): {token}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    wanted = {"key_id": args.key_id, "action": args.action, "outcome": args.outcome}
    params = {k: v for k, v in wanted.items() if v} | {"limit": str(args.limit)}
    return _request(args, "GET", "/audit-log", params=params)


def cmd_purge(args: argparse.Namespace) -> int:
    key = None
    if args.key:
        pairs = [item.partition("=") for item in args.key]
        if any(not sep or not name for name, sep, _ in pairs):
            print("--key takes column=value (repeat it for a composite key)", file=sys.stderr)
            return 2
        key = {name: value for name, _, value in pairs}
    body = {"table": args.table, "key": key, "backups": args.backups}
    return _request(args, "POST", "/database/purges", json=body)


def add_parsers(sub: Any) -> None:
    keys = sub.add_parser("keys", help="API keys (admin)").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key; its secret is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--team")
    create.add_argument("--table", action="append", help="limit to this table (repeatable)")
    create.add_argument("--requests-per-minute", type=int)
    create.add_argument("--concurrent-imports", type=int)
    create.add_argument(
        "--max-records", type=int, help="records one import may hold (a migration's key)"
    )
    create.set_defaults(run=cmd_keys_create)
    listing = keys.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.set_defaults(run=cmd_keys_list)
    rotate = keys.add_parser("rotate", help="a new secret for a key")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-seconds", type=int, default=0, help="old secret keeps working")
    rotate.set_defaults(run=cmd_keys_rotate)
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=cmd_keys_revoke)
    for parser in (create, listing, rotate, revoke):
        add_api_options(parser)
    bootstrap = keys.add_parser(
        "bootstrap", help="create an admin key straight in $DATABASE_URL (locked out?)"
    )
    bootstrap.add_argument("--name", default="bootstrap admin")
    bootstrap.set_defaults(run=cmd_keys_bootstrap)
    imports = sub.add_parser("imports", help="interventions on imports (admin)").add_subparsers(
        dest="imports_command", required=True
    )
    fail = imports.add_parser(
        "fail", help="fail an unfinished import by hand, freeing its concurrency slot"
    )
    fail.add_argument("import_id")
    fail.add_argument("--reason", help="kept in the import's error and the audit log")
    add_api_options(fail)
    fail.set_defaults(run=cmd_imports_fail)
    audit = sub.add_parser("audit", help="read the audit log (admin)")
    audit.add_argument("--key-id")
    audit.add_argument("--action", help="e.g. imports.create, export.read, keys.revoke")
    audit.add_argument("--outcome", choices=["success", "denied", "rejected", "error"])
    audit.add_argument("--limit", type=int, default=50)
    add_api_options(audit)
    audit.set_defaults(run=cmd_audit)

    purge = sub.add_parser(
        "purge",
        help="remove a table's rows, or one row's, from every copy tidegate keeps (admin)",
    )
    purge.add_argument("--table", required=True)
    purge.add_argument(
        "--key",
        action="append",
        metavar="COLUMN=VALUE",
        help="one row, by its primary key (repeat for a composite key); without: all rows",
    )
    purge.add_argument(
        "--backups", action="store_true", help="also delete the backups holding the table"
    )
    add_api_options(purge)
    purge.set_defaults(run=cmd_purge)
