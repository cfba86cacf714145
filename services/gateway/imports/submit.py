"""HTTP API of the gateway: submit an import, read its status, list imports and row errors."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import asyncpg
import msgspec
import structlog
from aiohttp import web

from services.gateway.access import idempotency, limits
from services.gateway.access.guard import TARGET, principal_of, require
from services.gateway.imports import failed_rows
from services.gateway.imports.parameters import (
    encoding_of,
    import_options,
)
from services.gateway.imports.report import (
    RowError,
    RowErrors,
    build_report,
    errors_csv,
    errors_csv_headers,
)
from services.gateway.imports.resources import API, Imports, import_of, import_url, respond
from services.gateway.intake import import_store
from services.gateway.intake.body import open_upload
from services.gateway.intake.csv_stream import CsvInputError
from services.gateway.intake.options import ImportOptions, Owner
from services.gateway.intake.relay import RELAY
from services.gateway.intake.spool import Spool
from services.gateway.intake.upload import (
    ImportReceived,
    ParsedUpload,
    TooManyRecords,
    parse_upload,
    record_import,
)
from services.gateway.intake.upload_gate import UPLOADS
from services.gateway.params import LIMIT, Param, int_param, invalid, path_id, required_param
from services.gateway.problems import Problem
from services.gateway.tables.lookup import find_table
from shared.api_keys import Principal
from shared.catalog import HeaderMismatch, TableDef
from shared.db import Conn
from shared.service import POOL, SETTINGS

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()
OnRecord = Callable[[Conn, uuid.UUID], Awaitable[None]]
MAX_NAMES = 100  # column names listed in a header-mismatch problem
CURSOR = Param(name="cursor", schema={"type": "string"}, description="from next_cursor")
# The row errors' paging and filters.
ERRORS_PARAMS = (
    Param(
        name="limit",
        schema={"type": "integer", "minimum": 1, "maximum": 1000},
        description="page size",
    ),
    Param(
        name="offset",
        schema={"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        description="skip",
    ),
    Param(
        name="severity",
        schema={"type": "string", "enum": ["error", "warning"]},
        description="filter",
    ),
    Param(
        name="format",
        schema={"type": "string", "enum": ["json", "csv"]},
        description="csv: a download",
    ),
)
_ERRORS = {p.name: p for p in ERRORS_PARAMS}


def _import_id(request: web.Request) -> uuid.UUID:
    import_id = path_id(request, "import_id", "import-not-found", "Import not found")
    request[TARGET] = str(import_id)
    return import_id


async def visible_import(conn: Conn, request: web.Request) -> asyncpg.Record:
    """The import of the path, if the request's key may see it; else 404 (not 403: an
    import that is not yours does not exist for you)."""
    row = await import_store.get_import(conn, _import_id(request), principal_of(request))
    if row is None:
        raise Problem(404, "import-not-found", "Import not found")
    return row


def csv_problem(exc: CsvInputError) -> Problem:
    where = {
        k: v
        for k, v in (
            ("line", exc.line),
            ("column", exc.column),
            ("byte_offset", exc.byte_offset),
            ("candidates", exc.candidates),
        )
        if v is not None
    }
    return Problem(
        422, exc.code.replace("_", "-"), "The file cannot be read as CSV", str(exc), **where
    )


def _header_problem(exc: HeaderMismatch, table: TableDef) -> Problem:
    return Problem(
        422,
        "header-mismatch",
        "Header does not match the table",
        str(exc),
        table=table.qualified_name,
        missing=exc.missing,
        unexpected=exc.unexpected[:MAX_NAMES],
        unexpected_count=len(exc.unexpected),
        duplicated=exc.duplicated[:MAX_NAMES],
    )


@routes.post(f"{API}/import", name="imports.create")
async def post_import(request: web.Request) -> web.Response:
    """Receive a file: validate_only needs the validate permission, the other modes import.
    With `Idempotency-Key`, a retry answers with the import the first request created."""
    settings = request.app[SETTINGS]
    table = await find_table(request, required_param(request, "table"))
    options = import_options(request, settings, table)
    principal = require(request, "validate" if options.mode == "validate_only" else "import")
    return await accept_import(request, table, options, principal, upload=True)


async def accept_import(
    request: web.Request,
    table: TableDef,
    options: ImportOptions,
    principal: Principal,
    *,
    upload: bool,
    body: AsyncIterator[bytes] | None = None,
    filename: str | None = None,
    on_record: OnRecord | None = None,
) -> web.Response:
    """Receive the request's file (`upload`) or `body` as a new import: the key's slot,
    Idempotency-Key, the outbox, and the 202 answer. The body is read and parsed before
    any connection is taken; recording it is one short transaction, in which `on_record`
    runs too (given the new import's id)."""
    settings = request.app[SETTINGS]
    pool = request.app[POOL]
    idem_key = idempotency.idempotency_key(request)
    fingerprint = idempotency.Fingerprint(request) if idem_key is not None else None
    limit = principal.concurrent_imports or settings.concurrent_imports
    gate = request.app[UPLOADS]
    with gate.admit(principal.id, idem_key):
        async with pool.acquire() as conn:
            earlier = None
            if idem_key is not None:
                earlier = await idempotency.find(conn, principal.id, idem_key)
            running = await limits.running_imports(conn, principal.id)
            # A retry of a request that created an import is answered with it, whatever
            # runs; otherwise the key's running imports and its uploads being received
            # (this one included) must fit its limit.
            if earlier is None and len(running) + gate.receiving(principal.id) > limit:
                raise await _too_many_running(conn, principal, limit)
        if upload:
            body, filename, charset = await open_upload(
                request, settings.max_file_bytes, settings.body_idle_seconds
            )
            if charset is not None and options.encoding is None:
                encoding = encoding_of(charset, from_charset=True)
                options = msgspec.structs.replace(options, encoding=encoding)
        assert body is not None
        if fingerprint is not None:
            body = fingerprint.tee(body)
        with refusals_as_problems(table):
            parsed = await parse_upload(
                table=table,
                body=body,
                options=options,
                max_record_bytes=settings.max_record_bytes,
            )
    try:
        received = await _record(
            request, parsed, table, options, principal, limit, fingerprint, filename, on_record
        )
    finally:
        parsed.close()
    if isinstance(received, web.Response):
        return received
    request.app[RELAY].wake()
    accepted = import_of(received.record)
    request[TARGET] = str(accepted.id)
    log.info(
        "import accepted",
        import_id=str(accepted.id),
        table=table.qualified_name,
        mode=options.mode,
        rows=received.rows,
        chunks=received.chunks,
    )
    return respond(accepted, status=202, headers={"Location": import_url(accepted.id)})


async def _record(
    request: web.Request,
    parsed: ParsedUpload,
    table: TableDef,
    options: ImportOptions,
    principal: Principal,
    limit: int,
    fingerprint: idempotency.Fingerprint | None,
    filename: str | None,
    on_record: OnRecord | None,
) -> ImportReceived | web.Response:
    """The parsed file as an import, in one transaction; or the answer of an earlier
    request with the same Idempotency-Key."""
    idem_key = idempotency.idempotency_key(request)
    try:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            if idem_key is not None and fingerprint is not None:
                earlier = await idempotency.lock(conn, principal.id, idem_key)
                if earlier is not None:
                    return await _replay(conn, request, earlier, fingerprint.digest())
            slot = await limits.claim_slot(conn, principal.id, limit)
            if slot is None:
                raise await _too_many_running(conn, principal, limit)
            owner = Owner(key_id=principal.id, team=principal.team, slot=slot)
            received = await record_import(
                conn, parsed, table=table, options=options, filename=filename, owner=owner
            )
            if on_record is not None:
                await on_record(conn, received.import_id)
            if idem_key is not None and fingerprint is not None:
                await idempotency.remember(
                    conn,
                    principal.id,
                    idem_key,
                    fingerprint.digest(),
                    import_id=received.import_id,
                )
            return received
    except asyncpg.UniqueViolationError as exc:
        # Another gateway committed an import into the same slot after this one looked:
        # the unique index had the last word.
        if exc.constraint_name != limits.RUNNING_SLOT_INDEX:
            raise
        async with request.app[POOL].acquire() as conn:
            raise await _too_many_running(conn, principal, limit) from None


async def _too_many_running(conn: Conn, principal: Principal, limit: int) -> Problem:
    running = await limits.running_imports(conn, principal.id)
    return limits.too_many_running(limit, running, [import_url(i) for i in running])


@contextmanager
def refusals_as_problems(table: TableDef) -> Iterator[None]:
    """The refusals of a file (parse_upload's, EarlyCheck's), as 422 problems."""
    try:
        yield
    except HeaderMismatch as exc:
        raise _header_problem(exc, table) from None
    except TooManyRecords as exc:
        raise Problem(
            422,
            "too-many-records",
            "Too many records",
            f"{exc}; nothing was imported. Split the file (`tidegate import FILE --split` cuts"
            " it at record boundaries and imports the parts), or ask an admin for a key with"
            " a higher max_records_per_import.",
            max_records=exc.limit,
        ) from None
    except CsvInputError as exc:
        raise csv_problem(exc) from None


async def _replay(
    conn: Conn,
    request: web.Request,
    earlier: idempotency.Earlier,
    fingerprint: bytes,
) -> web.Response:
    import_id = earlier.import_id
    if fingerprint != earlier.fingerprint or import_id is None:
        raise idempotency.reused(request.headers[idempotency.HEADER])
    row = await import_store.get_import(conn, import_id, principal_of(request))
    assert row is not None  # created by this key
    request[TARGET] = str(import_id)
    return respond(
        import_of(row),
        status=202,
        headers={"Location": import_url(import_id), "Idempotent-Replayed": "true"},
    )


@routes.get(f"{API}/imports/{{import_id}}", name="imports.read")
async def get_import(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await visible_import(conn, request)
    return respond(import_of(row))


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


@routes.get(f"{API}/imports", name="imports.list")
async def list_imports(request: web.Request) -> web.Response:
    """The imports this key (or its team) created; every import for admins."""
    limit = int_param(request, LIMIT.name, 20, *LIMIT.bounds)
    cursor = request.query.get(CURSOR.name)
    after = _decode_cursor(cursor) if cursor else None
    async with request.app[POOL].acquire() as conn:
        rows = await import_store.list_imports(
            conn, principal_of(request), limit=limit + 1, after=after
        )
    page, more = rows[:limit], len(rows) > limit
    body = Imports(items=[import_of(r) for r in page], next_cursor=None)
    headers = {}
    if more:
        body.next_cursor = _encode_cursor(page[-1])
        next_url = f"{API}/imports?limit={limit}&cursor={body.next_cursor}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    return respond(body, headers=headers)


@routes.get(f"{API}/imports/{{import_id}}/report", name="imports.report")
async def get_report(request: web.Request) -> web.Response:
    """The seed's verification metrics for one import (or validation)."""
    async with request.app[POOL].acquire() as conn:
        row = await visible_import(conn, request)
        report = await build_report(conn, row)
        # "Verify fixes": how many failed rows later retries loaded, how many are left.
        report.reconciliation = await failed_rows.reconciliation(conn, row)
    return respond(report)


@routes.get(f"{API}/imports/{{import_id}}/errors", name="imports.errors")
async def list_errors(request: web.Request) -> web.StreamResponse:
    """Row errors and warnings: JSON pages, or the whole list as a CSV download
    (`?format=csv` or `Accept: text/csv`)."""
    severity = request.query.get("severity")
    if severity is not None and severity not in _ERRORS["severity"].schema["enum"]:
        raise invalid("severity", "severity must be error or warning.")
    as_csv = request.query.get("format") == "csv" or (
        "format" not in request.query and "text/csv" in request.headers.get("Accept", "")
    )
    if (
        request.query.get("format", "csv" if as_csv else "json")
        not in _ERRORS["format"].schema["enum"]
    ):
        raise invalid("format", "format must be json or csv.")
    limit = int_param(request, "limit", 100, *_ERRORS["limit"].bounds)  # checked for CSV too
    offset = int_param(request, "offset", 0, *_ERRORS["offset"].bounds)
    pool = request.app[POOL]
    if as_csv:
        with Spool() as spool:
            async with pool.acquire() as conn:
                import_id: uuid.UUID = (await visible_import(conn, request))["id"]
                await errors_csv(conn, import_id, severity, spool)
            return await spool.send(request, errors_csv_headers(import_id))
    async with pool.acquire() as conn:
        import_id = (await visible_import(conn, request))["id"]
        total, items = await import_store.list_row_errors(
            conn, import_id, limit=limit, offset=offset, severity=severity
        )
    rows = [RowError(**item) for item in items]
    return respond(RowErrors(total=total, limit=limit, offset=offset, items=rows))
