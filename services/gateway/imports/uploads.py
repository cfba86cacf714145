"""Resumable uploads (tus 1.0: core, creation, checksum, expiration, termination) under
/api/v1/database/uploads, with the keys, roles, table scope, rate limits and audit log of
POST /import. The import's options are given when the upload is created (as query
parameters or as Upload-Metadata keys of the same names, with `filename`) and checked then;
the import starts when the last byte arrives, as POST /import would start it.

Bytes are stored in PostgreSQL as they arrive (intake/upload_parts.py), so a cut connection
or a killed gateway loses only what was not acknowledged, and any replica takes the next
PATCH. A PATCH with Upload-Checksum is stored whole or not at all."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import IO

import msgspec
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from services.gateway.access.guard import TARGET, principal_of, require
from services.gateway.imports.parameters import PARAMS, import_options
from services.gateway.imports.resources import API, import_url
from services.gateway.imports.submit import accept_import, refusals_as_problems
from services.gateway.intake import tus, upload_parts
from services.gateway.intake.body import BLOCK, body_blocks
from services.gateway.intake.options import ImportOptions
from services.gateway.intake.upload import EarlyCheck
from services.gateway.intake.upload_parts import PART_BYTES, OffsetMoved, Upload
from services.gateway.metrics import UPLOAD_OUTCOMES
from services.gateway.params import path_id
from services.gateway.problems import Problem
from services.gateway.tables.lookup import find_table
from shared.api_keys import Principal
from shared.catalog import TableDef
from shared.db import Conn
from shared.service import POOL, SETTINGS

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()
UPLOADS = f"{API}/uploads"


class UploadStatus(msgspec.Struct, kw_only=True):
    """An upload as GET answers it: how far it is, and the import it became."""

    id: uuid.UUID
    table: str
    filename: str | None
    length: int
    offset: int
    expires_at: str | None  # an unfinished upload's expiry (RFC 3339)
    import_id: uuid.UUID | None
    import_url: str | None


def upload_url(upload_id: uuid.UUID) -> str:
    return f"{UPLOADS}/{upload_id}"


def _status_headers(upload: Upload) -> dict[str, str]:
    more = {"Upload-Offset": str(upload.received), "Upload-Length": str(upload.length)}
    if upload.finished:
        more["Link"] = f'<{import_url(str(upload.import_id))}>; rel="related"'
    else:
        more["Upload-Expires"] = tus.expires(upload.expires_at)
    return tus.headers(**more)


def upload_params(query: Mapping[str, str], metadata: Mapping[str, str]) -> dict[str, str]:
    """The import's parameters: Upload-Metadata keys named as POST /import's parameters,
    then the query's (which win); other metadata (a client's `filetype`) is left out."""
    return {
        name: value
        for source in (metadata, query)
        for name, value in source.items()
        if name in PARAMS
    }


@routes.options(UPLOADS, name="uploads.options")
async def discover(request: web.Request) -> web.Response:
    """What this server supports of tus."""
    return web.Response(status=204, headers=tus.discovery(request.app[SETTINGS].max_file_bytes))


@routes.post(UPLOADS, name="uploads.create")
async def create_upload(request: web.Request) -> web.Response:
    """A new upload: the import's options, checked now as POST /import checks them, then
    its length (at most the file size limit); 201 with its URL."""
    settings = request.app[SETTINGS]
    tus.require_version(request.headers)
    length = tus.non_negative(request.headers, "Upload-Length")
    metadata = tus.metadata(request.headers.get("Upload-Metadata"))
    params = upload_params(request.query, metadata)
    if not params.get("table", "").strip():
        raise Problem(
            400,
            "missing-parameter",
            "Missing parameter",
            "table is required (a query parameter, or an Upload-Metadata key).",
            parameter="table",
        )
    table = await find_table(request, params["table"].strip())
    options = import_options(request, settings, table, query=params)
    principal = require(request, "validate" if options.mode == "validate_only" else "import")
    if length > settings.max_file_bytes:
        raise Problem(
            413,
            "file-too-large",
            "File too large",
            f"The upload's length is over the maximum file size of {settings.max_file_bytes}"
            " bytes.",
            max_file_size=settings.max_file_bytes,
        )
    if length == 0:
        raise Problem(400, "empty-upload", "Empty upload", "An empty file has nothing to import.")
    async with request.app[POOL].acquire() as conn:
        upload = await upload_parts.create(
            conn,
            key_id=principal.id,
            team=principal.team,
            target_table=table.qualified_name,
            params={**params, "table": table.qualified_name},
            filename=metadata.get("filename"),
            length=length,
            expiry_seconds=settings.upload_expiry_seconds,
        )
    request[TARGET] = str(upload.id)
    UPLOAD_OUTCOMES.labels("created").inc()
    log.info("upload created", upload_id=str(upload.id), table=table.qualified_name, length=length)
    return web.Response(
        status=201, headers={**_status_headers(upload), "Location": upload_url(upload.id)}
    )


async def _own_upload(conn: Conn, request: web.Request, principal: Principal) -> Upload:
    """The path's upload if this key created it (an admin's key may read and end any);
    404 otherwise, 410 (and its bytes deleted) once it has expired unfinished."""
    upload_id = path_id(request, "upload_id", "upload-not-found", "Upload not found")
    request[TARGET] = str(upload_id)
    upload = await upload_parts.get(conn, upload_id)
    mine = upload is not None and (upload.key_id == principal.id or principal.role == "admin")
    if upload is None or not mine:
        raise Problem(404, "upload-not-found", "Upload not found")
    if upload.expired and not upload.finished:
        if await upload_parts.delete(conn, upload.id):
            UPLOAD_OUTCOMES.labels("expired").inc()
        raise Problem(
            410,
            "upload-expired",
            "Upload expired",
            "The upload was not finished in time; its bytes are deleted. Start a new one.",
            expired_at=upload.expires_at.isoformat(),
        )
    return upload


@routes.head(f"{UPLOADS}/{{upload_id}}", name="uploads.offset")
async def upload_offset(request: web.Request) -> web.Response:
    """How many bytes are stored: where the next PATCH starts."""
    tus.require_version(request.headers)
    async with request.app[POOL].acquire() as conn:
        upload = await _own_upload(conn, request, principal_of(request))
    return web.Response(status=200, headers=_status_headers(upload))


@routes.get(f"{UPLOADS}/{{upload_id}}", name="uploads.read", allow_head=False)
async def read_upload(request: web.Request) -> web.Response:
    """The upload as JSON: its offset, and the import it became once finished."""
    async with request.app[POOL].acquire() as conn:
        upload = await _own_upload(conn, request, principal_of(request))
    status = UploadStatus(
        id=upload.id,
        table=upload.target_table,
        filename=upload.filename,
        length=upload.length,
        offset=upload.received,
        expires_at=None if upload.finished else upload.expires_at.isoformat(),
        import_id=upload.import_id,
        import_url=import_url(str(upload.import_id)) if upload.finished else None,
    )
    return web.Response(
        body=msgspec.json.encode(status),
        content_type="application/json",
        headers=_status_headers(upload),
    )


@routes.delete(f"{UPLOADS}/{{upload_id}}", name="uploads.delete")
async def delete_upload(request: web.Request) -> web.Response:
    """Termination: the upload and its bytes are deleted (an import it became stays)."""
    tus.require_version(request.headers)
    async with request.app[POOL].acquire() as conn:
        upload = await _own_upload(conn, request, principal_of(request))
        if await upload_parts.delete(conn, upload.id):
            UPLOAD_OUTCOMES.labels("terminated").inc()
    return web.Response(status=204, headers=tus.headers())


def _moved(upload: Upload, offset: int) -> Problem:
    problem = Problem(
        409,
        "wrong-offset",
        "Wrong offset",
        f"The upload is at byte {upload.received}, not {offset}: send from there"
        " (HEAD tells where an upload is).",
        offset=upload.received,
    )
    problem.headers.update(tus.headers(**{"Upload-Offset": str(upload.received)}))
    return problem


def _too_long(upload: Upload) -> Problem:
    return Problem(
        413,
        "upload-too-long",
        "More bytes than the upload's length",
        f"The upload was created with Upload-Length {upload.length}; nothing past it is kept.",
        length=upload.length,
    )


class _Receiver:
    """A PATCH's bytes stored in parts as they come, each checked first (EarlyCheck: a
    file that cannot become an import is refused as soon as its bytes show it); the part
    that would reach the upload's length is kept back (`tail`) for the import's
    transaction."""

    def __init__(
        self,
        request: web.Request,
        upload: Upload,
        offset: int,
        table: TableDef,
        options: ImportOptions,
    ) -> None:
        self._request = request
        self._upload = upload
        self._table = table
        settings = request.app[SETTINGS]
        # An upload stored before the early check existed has bytes but no check state:
        # its file is checked when it is complete, as before.
        legacy = upload.received > 0 and upload.checked is None
        self._check = (
            None
            if legacy
            else EarlyCheck(table, options, settings.max_record_bytes, upload.checked)
        )
        self.offset = offset  # where the bytes not stored yet begin
        self._pending = bytearray()
        self.tail: bytes | None = None

    async def add(self, data: bytes) -> None:
        if self.offset + len(self._pending) + len(data) > self._upload.length:
            raise _too_long(self._upload)
        self._pending += data
        while len(self._pending) >= PART_BYTES or self._reaches_length():
            if self._reaches_length():
                self.tail = bytes(self._pending)
                self._pending.clear()
                return
            await self._store(bytes(self._pending[:PART_BYTES]))
            del self._pending[:PART_BYTES]

    async def close(self) -> None:
        """Store what is left of the body (a PATCH that does not reach the length)."""
        if self._pending:
            await self._store(bytes(self._pending))
            self._pending.clear()

    def _reaches_length(self) -> bool:
        return self.offset + len(self._pending) == self._upload.length

    async def _store(self, part: bytes) -> None:
        checked = None
        if self._check is not None:
            with refusals_as_problems(self._table):
                self._check.feed(part)
            checked = self._check.state()
        async with self._request.app[POOL].acquire() as conn:
            try:
                self.offset = await upload_parts.append(
                    conn, self._upload.id, self.offset, part, checked
                )
            except OffsetMoved:
                current = await upload_parts.get(conn, self._upload.id)
                raise _moved(current or self._upload, self.offset) from None


def _cut(exc: Exception) -> bool:
    """The body broke off: the connection was lost, or the client fell silent (408)."""
    return not isinstance(exc, Problem) or exc.status == 408


def _body(request: web.Request) -> AsyncIterator[bytes]:
    return body_blocks(request, request.app[SETTINGS].body_idle_seconds)


async def _checked(request: web.Request, checksum: tus.Checksum, spool: IO[bytes]) -> None:
    """The whole body into `spool`, then its digest checked (460 when it differs)."""
    async for block in _body(request):
        checksum.update(block)
        spool.write(block)
    checksum.check()
    spool.seek(0)


async def _receive(
    request: web.Request, receiver: _Receiver, checksum: tus.Checksum | None
) -> None:
    """The PATCH's body into `receiver`: with a checksum, spooled and checked first; else
    as it comes, and what arrived before a cut is stored."""
    with tempfile.SpooledTemporaryFile(max_size=PART_BYTES) as spool:
        if checksum is not None:
            await _checked(request, checksum, spool)
            while block := spool.read(BLOCK):
                await receiver.add(block)
            return
        try:
            async for block in _body(request):
                await receiver.add(block)
        except (HttpProcessingError, ConnectionError, Problem) as exc:
            if _cut(exc):
                await receiver.close()  # keep what arrived before the body broke off
            raise


@routes.patch(f"{UPLOADS}/{{upload_id}}", name="uploads.append")
async def append_to_upload(request: web.Request) -> web.Response:
    """Bytes at Upload-Offset (409 with the right offset if it is not where the upload is);
    with Upload-Checksum, stored only if their digest matches (460). The PATCH that brings
    the last byte starts the import."""
    tus.require_version(request.headers)
    if request.content_type != tus.OFFSET_STREAM:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"A PATCH carries Content-Type: {tus.OFFSET_STREAM}.",
        )
    offset = tus.non_negative(request.headers, "Upload-Offset")
    checksum = (
        tus.Checksum(request.headers["Upload-Checksum"])
        if "Upload-Checksum" in request.headers
        else None
    )
    principal = principal_of(request)
    async with request.app[POOL].acquire() as conn:
        upload = await _own_upload(conn, request, principal)
    if upload.key_id != principal.id:
        raise Problem(
            403, "forbidden", "Forbidden", "Only the key that created an upload sends its bytes."
        )
    if upload.finished or offset != upload.received:
        raise _moved(upload, offset)
    if request.content_length is not None and offset + request.content_length > upload.length:
        raise _too_long(upload)
    table = await find_table(request, upload.target_table)
    options = import_options(request, request.app[SETTINGS], table, query=upload.params)
    receiver = _Receiver(request, upload, offset, table, options)
    try:
        await _receive(request, receiver, checksum)
        if receiver.tail is None:
            await receiver.close()
            more = {"Upload-Offset": str(receiver.offset)}
            more["Upload-Expires"] = tus.expires(upload.expires_at)
            return web.Response(status=204, headers=tus.headers(**more))
        return await _finish(request, upload, table, options, receiver.offset, receiver.tail)
    except Problem as problem:
        if problem.status == 422:  # the file cannot become an import: the upload ends
            async with request.app[POOL].acquire() as conn:
                if await upload_parts.delete(conn, upload.id):
                    UPLOAD_OUTCOMES.labels("refused").inc()
        raise


async def _finish(
    request: web.Request,
    upload: Upload,
    table: TableDef,
    options: ImportOptions,
    start: int,
    tail: bytes,
) -> web.Response:
    """The upload's bytes as a new import, recorded with the upload's last part; 204 with
    the import's link."""
    principal = require(request, "validate" if options.mode == "validate_only" else "import")

    async def body() -> AsyncIterator[bytes]:
        async for part in upload_parts.stored_bytes(request.app[POOL], upload.id):
            yield part
        yield tail

    async def link(conn: Conn, import_id: uuid.UUID) -> None:
        await upload_parts.complete(conn, upload, start, import_id)

    try:
        accepted = await accept_import(
            request,
            table,
            options,
            principal,
            upload=False,
            body=body(),
            filename=upload.filename,
            on_record=link,
        )
    except OffsetMoved:
        async with request.app[POOL].acquire() as conn:
            current = await upload_parts.get(conn, upload.id)
        raise _moved(current or upload, start) from None
    location = accepted.headers["Location"]
    UPLOAD_OUTCOMES.labels("completed").inc()
    log.info("upload finished", upload_id=str(upload.id), length=upload.length)
    return web.Response(
        status=204,
        headers=tus.headers(
            **{"Upload-Offset": str(upload.length), "Link": f'<{location}>; rel="related"'}
        ),
    )
