"""The resumable-upload paths (tus 1.0): discovery, creation, offset, append, termination."""

from __future__ import annotations

from services.gateway.imports.uploads import UPLOADS
from services.gateway.intake import tus
from services.gateway.openapi.schema import IMPORT_PARAMS, STR, Schema, json_body, operation, ref
from services.gateway.params import Param

UPLOAD_ID = Param(
    name="upload_id", schema=STR, description="the upload's id", where="path"
).openapi()
OFFSET = "^[0-9]{1,19}$"
LENGTH = "^[1-9][0-9]{0,18}$"  # an empty file has nothing to import


def _header(
    name: str, description: str, *, required: bool = False, **schema: str | list[str]
) -> Schema:
    return Param(
        name=name,
        schema={"type": "string", **schema},
        description=description,
        where="header",
        required=required,
    ).openapi()


TUS_RESUMABLE = _header(
    "Tus-Resumable", "the protocol's version", required=True, enum=[tus.VERSION]
)
# POST /import's parameters; `table` may be an Upload-Metadata key instead.
OPTIONS = [{**p, "required": False} for p in IMPORT_PARAMS]


def _headers(*names: str) -> Schema:
    return {name: {"schema": STR} for name in ("Tus-Resumable", *names)}


def upload_paths() -> dict[str, Schema]:
    return {
        UPLOADS: {
            "options": operation(
                "What this server supports of tus 1.0 (versions, extensions, size, checksums)",
                {
                    204: {
                        "description": "supported",
                        "headers": {name: {"schema": STR} for name in tus.discovery(0)},
                    }
                },
            ),
            "post": operation(
                "Create a resumable upload (tus creation): its length and the import's"
                " options, checked now as POST /import checks them; the import starts when"
                " the last byte arrives",
                {
                    201: {
                        "description": "created; send the bytes to the Location",
                        "headers": _headers("Location", "Upload-Expires"),
                    }
                },
                (404, 409, 412, 413),
                params=[
                    TUS_RESUMABLE,
                    _header(
                        "Upload-Length", "the file's size in bytes", required=True, pattern=LENGTH
                    ),
                    _header(
                        "Upload-Metadata",
                        "`key base64(value)` pairs: filename, and"
                        " any of the import's parameters (table, chunk_size, …)",
                    ),
                    *OPTIONS,
                ],
            ),
        },
        f"{UPLOADS}/{{upload_id}}": {
            "head": operation(
                "Where the upload is (Upload-Offset): the next PATCH starts there",
                {
                    200: {
                        "description": "its offset",
                        "headers": _headers(
                            "Upload-Offset", "Upload-Length", "Upload-Expires", "Link"
                        ),
                    }
                },
                (404, 410, 412),
                params=[UPLOAD_ID, TUS_RESUMABLE],
            ),
            "get": operation(
                "The upload as JSON: its offset, and the import it became",
                {200: json_body(ref("UploadStatus"), "the upload")},
                (404, 410),
                params=[UPLOAD_ID],
            ),
            "patch": operation(
                "Bytes at Upload-Offset (tus core; with Upload-Checksum, stored only if"
                " their digest matches). The PATCH that brings the last byte starts the"
                " import, linked from the answer. A file that cannot become an import (more"
                " records than the key's limit, a header that does not fit, bytes that are"
                " not CSV) is refused with 422 by the PATCH whose bytes show it, and the"
                " upload ends",
                {
                    204: {
                        "description": "stored",
                        "headers": _headers("Upload-Offset", "Upload-Expires", "Link"),
                    }
                },
                (404, 408, 409, 410, 412, 413, 415, 422, tus.CHECKSUM_MISMATCH),
                params=[
                    UPLOAD_ID,
                    TUS_RESUMABLE,
                    _header(
                        "Upload-Offset", "where these bytes start", required=True, pattern=OFFSET
                    ),
                    _header("Upload-Checksum", "`sha256 base64(digest)` (or sha1) of the body"),
                ],
                requestBody={
                    "required": True,
                    "content": {
                        tus.OFFSET_STREAM: {"schema": {"type": "string", "format": "binary"}}
                    },
                },
            ),
            "delete": operation(
                "End the upload (tus termination): its bytes are deleted",
                {204: {"description": "deleted", "headers": _headers()}},
                (404, 410, 412),
                params=[UPLOAD_ID, TUS_RESUMABLE],
            ),
        },
    }
