"""The OpenAPI document describes exactly the gateway's routes, and the committed copy is
current."""

from __future__ import annotations

import json
import re
from pathlib import Path

from services.gateway.access.guard import PUBLIC_PATHS, ROUTE_PERMISSIONS
from services.gateway.app import create_app
from services.gateway.console import routes as console
from services.gateway.openapi import document as openapi
from shared.config import load_settings

DOC = Path(__file__).parent.parent.parent / "docs" / "openapi.json"


def _routes() -> set[tuple[str, str]]:
    app = create_app(
        load_settings("gateway", {"DATABASE_URL": "x", "KAFKA_BOOTSTRAP_SERVERS": "x"})
    )
    found = set()
    gets = {r.handler for r in app.router.routes() if r.method == "GET"}
    for route in app.router.routes():
        if route.resource is None or (route.method == "HEAD" and route.handler in gets):
            continue  # aiohttp's HEAD beside each GET
        if route.resource.canonical.startswith(console.PREFIX):
            continue  # the console's files: pages, not API
        found.add((route.method.lower(), route.resource.canonical))
    return found


def test_the_committed_document_is_current() -> None:
    assert DOC.read_text() == openapi.render(), (
        "run: python -m services.gateway.openapi > docs/openapi.json"
    )


def test_every_route_is_documented_and_nothing_else() -> None:
    doc = openapi.document()
    assert doc["openapi"] == "3.1.0"
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == _routes()


def test_operations_declare_their_path_parameters_security_and_problems() -> None:
    doc = json.loads(DOC.read_text())
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)
            if path in PUBLIC_PATHS:
                assert op["security"] == [], path
            else:
                assert "security" not in op  # the document's default: a key is required
                for status in ("401", "403", "429", "500"):
                    content = op["responses"][status]["content"]
                    assert "application/problem+json" in content, (method, path, status)
    assert len(ROUTE_PERMISSIONS) == sum(
        1 for path, ops in doc["paths"].items() if path not in PUBLIC_PATHS for _ in ops
    )
