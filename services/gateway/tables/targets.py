"""`GET /api/v1/tables`: the tables this key may import into, with what a file must hold
for each (columns, which are required, keys, references); a client maps a file's header
onto them before it uploads anything."""

from __future__ import annotations

import msgspec
from aiohttp import web

from services.gateway.access.guard import principal_of
from services.gateway.tables.lookup import RULES, TABLES
from shared.catalog import TableDef
from shared.rulebook import NO_RULES, RuleBook, RuleFileError, unique_keys
from shared.service import POOL, SETTINGS

routes = web.RouteTableDef()


class TargetColumn(msgspec.Struct, kw_only=True):
    name: str
    type: str  # as PostgreSQL prints it, e.g. "character varying(40)"
    required: bool  # NOT NULL with no default: the file must set it
    has_default: bool
    enum: list[str] | None = None  # the labels of an enum column


class Reference(msgspec.Struct, kw_only=True):
    columns: list[str]
    table: str
    ref_columns: list[str]


class TargetTable(msgspec.Struct, kw_only=True):
    name: str  # schema.table
    columns: list[TargetColumn]
    primary_key: list[str]
    unique_keys: list[list[str]]  # the table's and its rule file's
    references: list[Reference]
    aliases: dict[str, str]  # header names the rule file maps onto columns
    rule_file_error: str | None = None  # imports into the table are refused until it is fixed


class TargetTables(msgspec.Struct, kw_only=True):
    items: list[TargetTable]


_LIST_SQL = """
SELECT n.nspname || '.' || c.relname AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY n.nspname, c.relname
"""


def describe(table: TableDef, book: RuleBook) -> TargetTable:
    error = None
    try:
        rules = book.rules_for(table)
    except RuleFileError as exc:
        rules, error = NO_RULES, str(exc)
    return TargetTable(
        name=table.qualified_name,
        columns=[
            TargetColumn(
                name=c.name,
                type=c.type_sql,
                required=c.required,
                has_default=c.has_default,
                enum=list(c.enum_labels) if c.enum_labels is not None else None,
            )
            for c in table.columns
        ],
        primary_key=list(table.primary_key),
        unique_keys=[list(k.columns) for k in unique_keys(table, rules)],
        references=[
            Reference(columns=list(f.columns), table=f.ref_table, ref_columns=list(f.ref_columns))
            for f in table.foreign_keys
        ],
        aliases=rules.aliases(),
        rule_file_error=error,
    )


@routes.get("/api/v1/tables", name="tables.list")
async def list_tables(request: web.Request) -> web.Response:
    principal = principal_of(request)
    schemas = list(request.app[SETTINGS].allowed_schemas)
    items = []
    async with request.app[POOL].acquire() as conn:
        for row in await conn.fetch(_LIST_SQL, schemas):
            if not principal.may_use_table(row["name"]):
                continue
            table = await request.app[TABLES].get(conn, row["name"])
            if table is not None:  # dropped meanwhile
                items.append(describe(table, request.app[RULES]))
    return web.Response(
        body=msgspec.json.encode(TargetTables(items=items)), content_type="application/json"
    )
