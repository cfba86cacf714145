"""`/console/`: the console's files, with the headers that keep a page holding an API key
safe (no inline script, no framing, no referrer, no sniffing). The files hold no data, so
they are public; every datum comes from the API with the key in a header."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"

# Scripts, styles, fonts and images from this origin only; nothing inline, no plugins,
# no framing by any site (clickjacking), forms post nowhere.
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}

routes = web.RouteTableDef()


def _file(path: Path) -> web.FileResponse:
    content_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    headers = dict(HEADERS)
    if content_type is not None:
        headers["Content-Type"] = f"{content_type}; charset=utf-8"
    return web.FileResponse(path, headers=headers)


@routes.get(PREFIX)
async def root(_request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(f"{PREFIX}/")


@routes.get(f"{PREFIX}/")
async def page(_request: web.Request) -> web.FileResponse:
    return _file(STATIC / "index.html")


@routes.get(PREFIX + "/{path:.+}")
async def asset(request: web.Request) -> web.FileResponse:
    """A file under static/ (never outside it); 404 otherwise."""
    wanted = (STATIC / request.match_info["path"]).resolve()
    if not wanted.is_relative_to(STATIC.resolve()) or not wanted.is_file():
        raise web.HTTPNotFound
    return _file(wanted)
