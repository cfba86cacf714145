"""RFC 9457 problem details, and a middleware that turns every error into one.

Types are stable relative URIs documented in docs/problems.md; no stack trace or SQL leaks.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from shared.db import PoolBusy
from shared.failures import is_unavailable

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 5  # when a dependency is down
BUSY_RETRY_AFTER_SECONDS = 1  # when every connection is in use


class Problem(web.HTTPException):
    """An HTTP error answered as problem+json; `extra` adds members (e.g. `errors`)."""

    def __init__(
        self, status: int, code: str, title: str, detail: str | None = None, **extra: Any
    ) -> None:
        self.status_code = status
        body: dict[str, Any] = {"type": f"/problems/{code}", "title": title, "status": status}
        if detail:
            body["detail"] = detail
        body.update(extra)
        super().__init__(text=json.dumps(body), content_type=PROBLEM_JSON)
        self.body_json = body


def retry_later(
    status: int, code: str, title: str, detail: str, seconds: int, **extra: Any
) -> Problem:
    """A problem the client should retry after `seconds` (`Retry-After`)."""
    problem = Problem(status, code, title, detail, **extra)
    problem.headers["Retry-After"] = str(seconds)
    return problem


GENERIC = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def _no_nul(request: web.Request) -> None:
    """400 for a query parameter holding NUL, which PostgreSQL text cannot hold."""
    for name, value in request.query.items():
        if "\x00" in name or "\x00" in value:
            raise Problem(
                400,
                "invalid-parameter",
                "Invalid parameter",
                "A query parameter holds a NUL character.",
                parameter=name.replace("\x00", ""),
            )


def _client_gone(request: web.Request, exc: Exception) -> bool:
    """The request's connection broke off (its body cut short, the socket closed)."""
    gone = request.transport is None or request.transport.is_closing()
    return gone and isinstance(exc, ConnectionError | HttpProcessingError)


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        _no_nul(request)
        return await handler(request)
    except Problem:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, title = GENERIC.get(exc.status, ("http-error", exc.reason))
        problem = Problem(exc.status, code, title, instance=request.path)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                problem.headers[name] = exc.headers[name]
        raise problem from None
    except PoolBusy:
        log.warning("no database connection came free", path=request.path)
        raise retry_later(
            503,
            "service-busy",
            "Service busy",
            "Every database connection of this gateway is in use; try again shortly.",
            BUSY_RETRY_AFTER_SECONDS,
            instance=request.path,
        ) from None
    except Exception as exc:
        if _client_gone(request, exc):
            # Nobody reads the answer: logged as what happened, not as a fault of ours.
            log.info("the client went away", path=request.path, error=repr(exc))
            raise Problem(
                499, "client-closed-request", "Client closed request", instance=request.path
            ) from None
        if is_unavailable(exc):
            log.warning("a dependency is unavailable", path=request.path, error=repr(exc))
            raise retry_later(
                503,
                "service-unavailable",
                "Service unavailable",
                "The database or the broker is not reachable; try again shortly.",
                RETRY_AFTER_SECONDS,
                instance=request.path,
            ) from None
        log.exception("unhandled error", path=request.path)
        raise Problem(
            500, "internal-error", "Internal error", "The error was logged.", instance=request.path
        ) from None
