"""API keys and roles: the token format, hashing, and who may do what.

A token is `tg_<lookup>_<secret>`: `tg_` makes leaked keys recognisable (secret scanners),
`lookup` (12 base32 characters, public) finds the key's row, `secret` carries 256 random
bits. Only SHA-256 of the secret is stored (a fast hash is right for random secrets), and it
is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Literal, get_args

import msgspec

PREFIX = "tg_"
LOOKUP_LENGTH = 12
MAX_TOKEN_LENGTH = 200

Role = Literal["admin", "data_manager", "viewer", "subscriber"]
Permission = Literal["import", "validate", "export", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

# The seed's access control, plus administration (keys, audit, backups, rollback).
GRANTS: dict[Permission, frozenset[Role]] = {
    "import": frozenset({"admin", "data_manager"}),
    "validate": frozenset({"admin", "data_manager", "viewer"}),
    "export": frozenset({"admin", "data_manager", "subscriber"}),
    "admin": frozenset({"admin"}),
}


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The key a request was authenticated with."""

    id: uuid.UUID
    lookup: str
    name: str
    role: Role
    team: str | None = None
    tables: tuple[str, ...] | None = None  # None: every table
    requests_per_minute: int | None = None  # None: the gateway's default
    concurrent_imports: int | None = None
    max_records_per_import: int | None = None  # None: the gateway's default

    def may(self, permission: Permission) -> bool:
        return self.role in GRANTS[permission]

    def may_use_table(self, qualified_name: str) -> bool:
        return self.tables is None or qualified_name in self.tables


class IssuedToken(msgspec.Struct, frozen=True):
    token: str
    lookup: str
    secret_hash: bytes


def issue_token(lookup: str | None = None) -> IssuedToken:
    """A new token; pass the key's `lookup` to rotate its secret."""
    if lookup is None:
        lookup = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:LOOKUP_LENGTH]
    secret = secrets.token_urlsafe(32)
    return IssuedToken(f"{PREFIX}{lookup}_{secret}", lookup, hash_secret(secret))


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_token(token: str) -> tuple[str, str] | None:
    """(lookup, secret) of a well-formed token, else None."""
    if len(token) > MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
        return None
    lookup, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or len(lookup) != LOOKUP_LENGTH or len(secret) < 32 or not secret.isascii():
        return None
    return lookup, secret


def secret_matches(secret: str, stored: bytes, previous: bytes | None) -> bool:
    """Constant-time comparison with the current hash and, during a rotation's grace
    period, the previous one (both are always compared)."""
    given = hash_secret(secret)
    current = hmac.compare_digest(given, stored)
    earlier = hmac.compare_digest(given, previous or b"\0" * len(given))
    return current or (previous is not None and earlier)
