"""Query parameters and path ids: parsed or refused with a 400/404 problem, and declared
once (`Param`) for both the handler that reads them and the OpenAPI document."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from aiohttp import web

from services.gateway.problems import Problem

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
FLAG: dict[str, Any] = {  # as `flag` reads them
    "type": "string",
    "enum": [*(word for pair in zip(TRUE, FALSE, strict=True) for word in pair), ""],
}


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """A request parameter as a handler reads it and the OpenAPI document declares it."""

    name: str
    schema: dict[str, Any]  # JSON Schema: type, bounds, enum
    description: str
    where: Literal["query", "header", "path"] = "query"
    required: bool = False

    @property
    def bounds(self) -> tuple[int, int]:
        """An integer parameter's (minimum, maximum)."""
        return int(self.schema["minimum"]), int(self.schema["maximum"])

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "schema": self.schema,
            "description": self.description,
        }


def invalid(name: str, detail: str) -> Problem:
    return Problem(400, "invalid-parameter", "Invalid parameter", detail, parameter=name)


Query = web.Request | Mapping[str, str]  # a request's query, or parameters built from one


def _query(source: Query) -> Mapping[str, str]:
    return source.query if isinstance(source, web.Request) else source


def int_param(source: Query, name: str, default: int, low: int, high: int) -> int:
    raw = _query(source).get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid(name, f"{name} must be an integer from {low} to {high}.")
    return value


def flag(source: Query, name: str, default: bool = False) -> bool:
    """true/1/yes (or the bare `?name`) and false/0/no."""
    raw = _query(source).get(name, "true" if default else "false")
    if raw in TRUE or raw == "":
        return True
    if raw in FALSE:
        return False
    raise invalid(name, f"{name} must be true or false.")


def uuid_param(request: web.Request, name: str) -> uuid.UUID | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise invalid(name, f"{name} must be a UUID.") from None


def time_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is not None:
            value = value.astimezone(UTC)  # out of range once in UTC: not a time at all
    except (ValueError, OverflowError):
        value = None
    if value is None or value.tzinfo is None:
        raise invalid(name, f"{name} must be an ISO 8601 timestamp with a UTC offset.")
    return value


def path_id(request: web.Request, name: str, code: str, title: str) -> uuid.UUID:
    """The id in the path; anything that is not a UUID is simply not found."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise Problem(404, code, title) from None


def required_param(request: web.Request, name: str) -> str:
    value = request.query.get(name, "").strip()
    if not value:
        raise Problem(
            400, "missing-parameter", "Missing parameter", f"{name} is required.", parameter=name
        )
    return value


UUID_SCHEMA: dict[str, Any] = {"type": "string", "format": "uuid"}
TIME_SCHEMA: dict[str, Any] = {"type": "string", "format": "date-time"}
LIMIT = Param(
    name="limit", schema={"type": "integer", "minimum": 1, "maximum": 100}, description="page size"
)
IMPORT_ID = Param(name="import_id", schema=UUID_SCHEMA, description="the import's id", where="path")
KEY_ID = Param(name="key_id", schema=UUID_SCHEMA, description="the key's id", where="path")
OPERATION_ID = Param(
    name="operation_id", schema=UUID_SCHEMA, description="the operation's id", where="path"
)
BACKUP_ID = Param(name="backup_id", schema=UUID_SCHEMA, description="the backup's id", where="path")
IDEMPOTENCY = Param(
    name="Idempotency-Key",
    schema={"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    description="a retry with the same key (and body) answers with the operation the first one"
    " started",
    where="header",
)
