"""Query parameters and path ids: parsed or refused with a 400/404 problem."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web

from services.gateway.problems import Problem

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def invalid(name: str, detail: str) -> Problem:
    return Problem(400, "invalid-parameter", "Invalid parameter", detail, parameter=name)


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid(name, f"{name} must be an integer from {low} to {high}.")
    return value


def flag(request: web.Request, name: str) -> bool:
    """true/1/yes (or the bare `?name`) and false/0/no."""
    raw = request.query.get(name, "false")
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
    except ValueError:
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
