"""An admin's interventions on an import. Today one: fail an import by hand, the escape hatch
for an import that will not finish (never needed when the reconciler does its job), which
frees its concurrency slot. The audit log records who did it, and why."""

from __future__ import annotations

from aiohttp import web

from services.gateway.access.guard import AUDIT_DETAIL, TARGET, principal_of
from services.gateway.imports.resources import API, import_of, respond
from services.gateway.intake import import_store
from services.gateway.params import Param, invalid, path_id
from services.gateway.problems import Problem
from shared import imports
from shared.service import POOL

routes = web.RouteTableDef()
MAX_REASON = 500
REASON = Param(
    name="reason",
    schema={"type": "string", "maxLength": MAX_REASON, "pattern": "^[^\\x00]*$"},
    description="why (kept in the import's error and the audit log)",
)


@routes.post(f"{API}/imports/{{import_id}}/fail", name="imports.fail")
async def fail_import(request: web.Request) -> web.Response:
    import_id = path_id(request, "import_id", "import-not-found", "Import not found")
    request[TARGET] = str(import_id)
    reason = request.query.get(REASON.name, "").strip() or "no reason given"
    if len(reason) > MAX_REASON:
        raise invalid("reason", f"reason is longer than {MAX_REASON} characters.")
    if "\x00" in reason:
        raise invalid("reason", "reason must not contain NUL characters.")
    who = principal_of(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if await import_store.get_import(conn, import_id, who) is None:
            raise Problem(404, "import-not-found", "Import not found")
        failed = await imports.fail_import(
            conn,
            import_id,
            f"failed by an administrator (key {who.lookup}): {reason}",
            by="gateway",
        )
        if failed is None:
            raise Problem(
                409,
                "import-finished",
                "Import already finished",
                "Only an unfinished import can be failed.",
            )
        row = await import_store.get_import(conn, import_id, who)
    request[AUDIT_DETAIL]["reason"] = reason
    assert row is not None
    return respond(import_of(row))
