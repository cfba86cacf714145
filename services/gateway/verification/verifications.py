"""verify-data through the API: `POST /api/v1/database/verifications` (202 + the status
resource), `GET /verifications` (newest first, `?table=` for one table's history) and
`GET /verifications/{id}`. The validator does the checking (it owns the rules); the
request and its command are written in one transaction, through the outbox.

Without `tables`, every table that imports have loaded into or that has a rule file (in
the key's scope) is verified. With `key` (one table, its primary key's values by column),
only that row is: the checks of `debug record`'s "does it pass verification now?".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from services.gateway.access.guard import AUDIT_DETAIL, TARGET, principal_of, require
from services.gateway.imports.resources import API, respond
from services.gateway.intake import import_store
from services.gateway.intake.relay import RELAY
from services.gateway.params import LIMIT, UUID_SCHEMA, Param, int_param, invalid, path_id
from services.gateway.problems import Problem
from services.gateway.tables.lookup import RULES, TABLES, find_table
from shared import topics
from shared.db import Conn
from shared.events import VerificationRequested, encode, event_id, event_type
from shared.key_store import TableName
from shared.service import POOL

routes = web.RouteTableDef()
MAX_TABLES = 100
TABLE_FILTER = Param(
    name="table", schema={"type": "string"}, description="only those of this `schema.table`"
)
VERIFICATION_ID = Param(
    name="verification_id", schema=UUID_SCHEMA, description="its id", where="path"
)
COLUMNS = (
    "v.id, v.tables, v.row_key, v.status, v.passed, v.result, v.error, v.key_id,"
    " v.created_at, v.finished_at, to_jsonb(p) - 'verification_id' AS progress"
)
FROM = (
    "tidegate.verifications v LEFT JOIN tidegate.verification_progress p"
    " ON p.verification_id = v.id AND v.status = 'pending'"
)


class VerificationRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of POST /verifications (optional; its OpenAPI schema is derived from this)."""

    tables: Annotated[list[TableName], msgspec.Meta(min_length=1, max_length=MAX_TABLES)] | None = (
        None
    )
    key: (
        Annotated[
            dict[str, str],
            msgspec.Meta(
                description="one row of the one table, by its primary key's columns (text values)"
            ),
        ]
        | None
    ) = None


class VerificationProgress(msgspec.Struct, frozen=True):
    """How far a pending verification is: rows checked of the table in hand, of about
    how many (the planner's estimate), after `tables_done` tables."""

    table_name: str
    tables_done: int
    rows_checked: int
    rows_estimated: int
    updated_at: datetime


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """A verification as the API shows it; `result` holds one report per table."""

    id: uuid.UUID
    tables: list[str]
    key: dict[str, str] | None  # the one row verified, by its primary key
    status: Literal["pending", "completed", "failed"]
    passed: bool | None  # every check of every table found nothing
    result: list[dict[str, Any]] | None
    error: str | None
    progress: VerificationProgress | None  # while pending
    created_by: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None
    links: dict[str, str]


def verification_url(verification_id: uuid.UUID | str) -> str:
    return f"{API}/verifications/{verification_id}"


class Verifications(msgspec.Struct, kw_only=True):
    items: list[Verification]  # newest first


def render(row: asyncpg.Record) -> Verification:
    body = Verification(
        id=row["id"],
        tables=list(row["tables"]),
        key=msgspec.json.decode(row["row_key"]) if row["row_key"] else None,
        status=row["status"],
        passed=row["passed"],
        result=msgspec.json.decode(row["result"]) if row["result"] else None,
        error=row["error"],
        progress=msgspec.json.decode(row["progress"], type=VerificationProgress)
        if row["progress"]
        else None,
        created_by=row["key_id"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        links={"self": verification_url(row["id"])},
    )
    return body


async def _default_tables(request: web.Request, conn: Conn) -> list[str]:
    """The tables imports loaded into, and those with a rule file, that still exist and
    that the key may use."""
    imported = [
        r["target_table"]
        for r in await conn.fetch(
            "SELECT DISTINCT target_table FROM tidegate.imports WHERE mode = 'import'"
        )
    ]
    ruled = request.app[RULES].tables()
    names = []
    who = principal_of(request)
    for name in sorted(set(imported) | set(ruled)):
        table = await request.app[TABLES].get(conn, name)
        if table is not None and who.may_use_table(table.qualified_name):
            names.append(table.qualified_name)
    return names


async def _check_row_key(request: web.Request, names: list[str], key: dict[str, str]) -> None:
    """A row's key: one table, its primary key's columns, values of their types."""
    if len(names) != 1:
        raise invalid("key", "key names a row of one table: give exactly one table.")
    table = await find_table(request, names[0])
    if not table.primary_key or set(key) != set(table.primary_key):
        raise invalid("key", f"key must give the primary key's columns {list(table.primary_key)}.")
    casts = ", ".join(table.key_params(1))
    try:
        async with request.app[POOL].acquire() as conn:
            await conn.fetchval(
                f"SELECT ROW({casts}) IS NOT NULL", *(key[c] for c in table.primary_key)
            )
    except asyncpg.DataError as exc:
        raise invalid("key", f"key is not a value of the key's type: {exc}") from None


@routes.post(f"{API}/verifications", name="verifications.create")
async def create_verification(request: web.Request) -> web.Response:
    who = require(request, "validate")
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw or b"{}", type=VerificationRequest)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid-body", "Invalid request body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed-body", "Malformed request body", str(exc)) from None
    if body.tables is not None:
        found = [(await find_table(request, name)).qualified_name for name in body.tables]
        names = list(dict.fromkeys(found))
    else:
        async with request.app[POOL].acquire() as conn:
            names = await _default_tables(request, conn)
        if not names:
            raise Problem(
                409, "nothing-to-verify", "Nothing to verify", "No table was imported into yet."
            )
    if body.key is not None:
        await _check_row_key(request, names, body.key)
    verification_id = uuid.uuid4()
    command = VerificationRequested(verification_id=verification_id)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "WITH v AS (INSERT INTO tidegate.verifications (id, tables, row_key, key_id, team)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING *)"
            f" SELECT {COLUMNS} FROM v LEFT JOIN tidegate.verification_progress p ON false",
            verification_id,
            names,
            None if body.key is None else msgspec.json.encode(body.key).decode(),
            who.id,
            who.team,
        )
        await conn.execute(
            "INSERT INTO tidegate.outbox (event_id, event_type, topic, key, payload)"
            " VALUES ($1, $2, $3, $4, $5)",
            event_id(command),
            event_type(command),
            topics.VERIFICATIONS,
            str(verification_id),
            encode(command),
        )
    assert row is not None
    request.app[RELAY].wake()
    request[TARGET] = str(verification_id)
    request[AUDIT_DETAIL]["tables"] = names
    return respond(render(row), status=202, headers={"Location": verification_url(verification_id)})


@routes.get(f"{API}/verifications", name="verifications.list")
async def list_verifications(request: web.Request) -> web.Response:
    """Newest first; `?table=` for one table's history (was it better yesterday?)."""
    limit = int_param(request, LIMIT.name, 20, *LIMIT.bounds)
    table = request.query.get(TABLE_FILTER.name)
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM {FROM}"
            f" WHERE {import_store.visible(1, tables='v.tables', of='v.')}"
            " AND ($4::text IS NULL OR v.tables @> ARRAY[$4::text])"
            " ORDER BY v.created_at DESC, v.id DESC LIMIT $5",
            *import_store.visibility(principal_of(request)),
            table,
            limit,
        )
    return respond(Verifications(items=[render(r) for r in rows]))


@routes.get(f"{API}/verifications/{{verification_id}}", name="verifications.read")
async def read_verification(request: web.Request) -> web.Response:
    verification_id = path_id(
        request, "verification_id", "verification-not-found", "Verification not found"
    )
    request[TARGET] = str(verification_id)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM {FROM} WHERE v.id = $1"
            f" AND {import_store.visible(2, tables='v.tables', of='v.')}",
            verification_id,
            *import_store.visibility(principal_of(request)),
        )
    if row is None:
        raise Problem(404, "verification-not-found", "Verification not found")
    return respond(render(row))
