"""HTTP API of the gateway: submit an import, read its status, list imports and row errors."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from services.gateway import repository
from services.gateway.body import open_upload
from services.gateway.csv_stream import CsvInputError
from services.gateway.intake import receive_import
from services.gateway.problems import Problem
from services.gateway.relay import RELAY
from shared.catalog import HeaderMismatch, TableCache
from shared.service import POOL, SETTINGS

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()
TABLES = web.AppKey("tables", TableCache)
API = "/api/v1/database"
NOT_YET_SUPPORTED = ("validate_only", "dry_run")


def import_url(import_id: uuid.UUID | str) -> str:
    return f"{API}/imports/{import_id}"


def render_import(row: dict[str, Any] | asyncpg.Record) -> dict[str, Any]:
    chunks_total = row["chunks_total"]
    progress = (row["chunks_loaded"] / chunks_total) if chunks_total else None
    return {
        "id": str(row["id"]),
        "table": row["target_table"],
        "columns": list(row["columns"]),
        "status": row["status"],
        "source": row["source"],
        "filename": row["filename"],
        "chunk_size": row["chunk_size"],
        "counts": {
            "file_rows": row["file_rows"],
            "total": row["total_rows"],
            "valid": row["valid_rows"],
            "loaded": row["loaded_rows"],
            "failed": row["failed_rows"],
        },
        "chunks": {
            "total": chunks_total,
            "validated": row["chunks_validated"],
            "loaded": row["chunks_loaded"],
        },
        "progress": progress,
        "error": row["error"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        "links": {"self": import_url(row["id"]), "errors": f"{import_url(row['id'])}/errors"},
    }


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Problem(
            400,
            "invalid-parameter",
            "Invalid parameter",
            f"{name} must be an integer from {low} to {high}.",
            parameter=name,
        )
    return value


def _import_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["import_id"])
    except ValueError:
        raise Problem(404, "import-not-found", "Import not found") from None


@routes.post(f"{API}/import")
async def post_import(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    for name in NOT_YET_SUPPORTED:
        if name in request.query:
            raise Problem(
                400,
                "unsupported-parameter",
                "Parameter not supported yet",
                f"{name} is not implemented in this version; nothing was imported.",
                parameter=name,
            )
    table_name = request.query.get("table", "").strip()
    if not table_name:
        raise Problem(
            400, "missing-parameter", "Missing parameter", "table is required.", parameter="table"
        )
    chunk_size = _int_param(
        request, "chunk_size", settings.default_chunk_size, 1, settings.max_chunk_size
    )
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        table = await request.app[TABLES].get(conn, table_name)
    if table is None:
        raise Problem(
            404,
            "unknown-table",
            "Unknown table",
            f"There is no table {table_name!r} that imports may write to.",
            table=table_name,
        )
    body, filename = await open_upload(request, settings.max_file_bytes)
    async with pool.acquire() as conn:
        try:
            received = await receive_import(
                conn, table=table, body=body, chunk_size=chunk_size, filename=filename
            )
        except HeaderMismatch as exc:
            raise Problem(
                422,
                "header-mismatch",
                "Header does not match the table",
                str(exc),
                table=table.qualified_name,
                missing=exc.missing,
                unexpected=exc.unexpected,
                duplicated=exc.duplicated,
            ) from None
        except CsvInputError as exc:
            where = {
                k: v
                for k, v in (
                    ("line", exc.line),
                    ("column", exc.column),
                    ("byte_offset", exc.byte_offset),
                )
                if v is not None
            }
            raise Problem(
                422, exc.code.replace("_", "-"), "The file cannot be read as CSV", str(exc), **where
            ) from None
    request.app[RELAY].wake()
    body_json = render_import(received.record)
    log.info(
        "import accepted",
        import_id=body_json["id"],
        table=table.qualified_name,
        rows=received.rows,
        chunks=received.chunks,
    )
    return web.json_response(
        body_json, status=202, headers={"Location": import_url(body_json["id"])}
    )


@routes.get(f"{API}/imports/{{import_id}}")
async def get_import(request: web.Request) -> web.Response:
    import_id = _import_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await repository.get_import(conn, import_id)
    if row is None:
        raise Problem(404, "import-not-found", "Import not found")
    return web.json_response(render_import(row))


def _encode_cursor(row: asyncpg.Record) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, ident = raw.split("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(
            400,
            "invalid-parameter",
            "Invalid parameter",
            "cursor is not valid.",
            parameter="cursor",
        ) from None


@routes.get(f"{API}/imports")
async def list_imports(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 20, 1, 100)
    cursor = request.query.get("cursor")
    after = _decode_cursor(cursor) if cursor else None
    async with request.app[POOL].acquire() as conn:
        rows = await repository.list_imports(conn, limit=limit + 1, after=after)
    page, more = rows[:limit], len(rows) > limit
    body: dict[str, Any] = {"items": [render_import(r) for r in page], "next_cursor": None}
    headers = {}
    if more:
        body["next_cursor"] = _encode_cursor(page[-1])
        next_url = f"{API}/imports?limit={limit}&cursor={body['next_cursor']}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    return web.json_response(body, headers=headers)


@routes.get(f"{API}/imports/{{import_id}}/errors")
async def list_errors(request: web.Request) -> web.Response:
    import_id = _import_id(request)
    limit = _int_param(request, "limit", 100, 1, 1000)
    offset = _int_param(request, "offset", 0, 0, 2**31 - 1)
    async with request.app[POOL].acquire() as conn:
        if await repository.get_import(conn, import_id) is None:
            raise Problem(404, "import-not-found", "Import not found")
        total, items = await repository.list_row_errors(conn, import_id, limit=limit, offset=offset)
    return web.json_response({"total": total, "limit": limit, "offset": offset, "items": items})
