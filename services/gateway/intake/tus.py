"""The tus 1.0 resumable-upload protocol's headers (https://tus.io/protocols/resumable-upload):
core, creation, checksum, expiration and termination. Pure functions of header values;
the routes are in imports/uploads.py, the stored bytes in intake/upload_parts.py."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime

from services.gateway.problems import Problem

VERSION = "1.0.0"
EXTENSIONS = ("creation", "checksum", "expiration", "termination")
CHECKSUMS = ("sha1", "sha256")  # tus requires sha1; sha256 is the one to use
OFFSET_STREAM = "application/offset+octet-stream"
CHECKSUM_MISMATCH = 460  # tus's own status: the part was not stored


def headers(**more: str) -> dict[str, str]:
    """Tus-Resumable, which every answer but OPTIONS' carries, and `more`."""
    return {"Tus-Resumable": VERSION, "Cache-Control": "no-store", **more}


def discovery(max_size: int) -> dict[str, str]:
    """What OPTIONS answers: the versions, extensions, size limit and checksums."""
    return {
        "Tus-Resumable": VERSION,
        "Tus-Version": VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
    }


def expires(at: datetime) -> str:
    """An Upload-Expires value (RFC 9110's HTTP-date)."""
    return format_datetime(at, usegmt=True)


def _bad(header: str, detail: str) -> Problem:
    return Problem(400, "invalid-header", f"Invalid {header}", detail, header=header)


def require_version(request_headers: Mapping[str, str]) -> None:
    """412 unless the request speaks tus 1.0.0."""
    if request_headers.get("Tus-Resumable") != VERSION:
        problem = Problem(
            412,
            "unsupported-tus-version",
            "Unsupported tus version",
            f"Send Tus-Resumable: {VERSION}.",
            supported=[VERSION],
        )
        problem.headers["Tus-Version"] = VERSION
        raise problem


def non_negative(request_headers: Mapping[str, str], header: str) -> int:
    """A required header holding a non-negative integer (Upload-Length, Upload-Offset)."""
    value = request_headers.get(header)
    if value is None:
        raise _bad(header, f"{header} is required.")
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise _bad(header, f"{header} must be a non-negative integer.")
    return int(value)


def metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (the value may be left
    out); keys are unique, values UTF-8 text."""
    pairs: dict[str, str] = {}
    if value is None or not value.strip():
        return pairs
    for item in value.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not key or not key.isascii() or " " in encoded.strip() or key in pairs:
            raise _bad("Upload-Metadata", f"{item.strip()!r} is not a `key base64value` pair.")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _bad("Upload-Metadata", f"the value of {key!r} is not base64 UTF-8.") from None
    return pairs


class Checksum:
    """Upload-Checksum: `algorithm base64(digest)` of the PATCH's body."""

    def __init__(self, value: str) -> None:
        algorithm, _, encoded = value.strip().partition(" ")
        if algorithm not in CHECKSUMS:
            raise _bad(
                "Upload-Checksum", f"Use one of: {', '.join(CHECKSUMS)} (Tus-Checksum-Algorithm)."
            )
        try:
            self.expected = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise _bad("Upload-Checksum", "the digest is not base64.") from None
        if not self.expected:
            raise _bad("Upload-Checksum", "the digest is missing: `algorithm base64(digest)`.")
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def check(self) -> None:
        """460 unless the bytes seen have the expected digest."""
        if self._hash.digest() != self.expected:
            raise Problem(
                CHECKSUM_MISMATCH,
                "checksum-mismatch",
                "Checksum mismatch",
                f"The part's {self.algorithm} digest is not the one in Upload-Checksum;"
                " nothing of it was stored. Send it again.",
                algorithm=self.algorithm,
            )
