"""Revocation endpoints (admins): the kill switch for a subject, an OAuth client or one token.

- `POST /admin/revocations` body ``{"subject"|"client_id"|"jti": "...", "reason": "...", "ttl_s": N}`` → 201 with
  the revocation (a `jti` comes back only as its hash: the raw token id is never stored or echoed);
- `GET /admin/revocations` → ``{"revocations": [...], "next": null}`` (active ones, oldest first);
- `DELETE /admin/revocations/{id}` → the removed revocation, 404 when there is no such active one.

The call itself is audited by the admin frame before it runs; the store's event hook writes the `revocation`
record and sends the `revocation.created` webhook once the change is in effect.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.admin import params
from gateway.admin.context import Role
from gateway.admin.errors import invalid_request
from gateway.admin.framework import AdminCall, endpoint, json_reply
from gateway.errors import GatewayError
from gateway.revocation import InvalidRevocation, RevocationStore, RevocationStoreUnavailable

REVOCATIONS = web.AppKey("revocations", RevocationStore)  # type: ignore[type-abstract]
MAX_BODY = 16 * 1024
KINDS = ("subject", "client_id", "jti")


def _unavailable() -> GatewayError:
    return GatewayError(503, "revocations_unavailable", "The revocation store cannot be reached; nothing was "
                        "changed. Retry shortly.", headers={"Retry-After": "2"})


async def describe_create(request: web.Request) -> dict[str, Any]:
    """What the admin record of a POST holds: which kind was revoked, never the value (a raw jti is a secret)."""
    return {"path": request.path}


@endpoint("POST", "/admin/revocations", action="revocations.create", role=Role.ADMIN, describe=describe_create)
async def create(request: web.Request, call: AdminCall) -> web.StreamResponse:
    params.check_query(request.query, ())
    body = await params.json_object(
        request, max_bytes=MAX_BODY, usage='{"subject"|"client_id"|"jti": "...", "reason": "...", "ttl_s": N}')
    named = [k for k in KINDS if k in body]
    if len(named) != 1:
        raise invalid_request("Name exactly one of subject, client_id or jti.")
    unknown = set(body) - {*KINDS, "reason", "ttl_s"}
    if unknown:
        raise invalid_request(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    ttl = body.get("ttl_s")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
        raise invalid_request("ttl_s must be a number of seconds.")
    store = request.app[REVOCATIONS]
    try:
        rev = await store.add(named[0], body[named[0]], reason=body.get("reason", ""), created_by=call.principal.sub,
                              ttl_s=ttl)
    except InvalidRevocation as exc:
        raise invalid_request(str(exc)) from None
    except RevocationStoreUnavailable:
        raise _unavailable() from None
    return json_reply(rev.public(), status=201)


@endpoint("GET", "/admin/revocations", action="revocations.list", role=Role.ADMIN)
async def list_all(request: web.Request, call: AdminCall) -> web.StreamResponse:
    params.check_query(request.query, ())
    try:
        revs = await request.app[REVOCATIONS].list()
    except RevocationStoreUnavailable:
        raise _unavailable() from None
    return json_reply({"revocations": [r.public() for r in revs], "next": None})


@endpoint("DELETE", "/admin/revocations/{id}", action="revocations.delete", role=Role.ADMIN)
async def delete(request: web.Request, call: AdminCall) -> web.StreamResponse:
    params.check_query(request.query, ())
    try:
        rev = await request.app[REVOCATIONS].delete(request.match_info["id"])
    except RevocationStoreUnavailable:
        raise _unavailable() from None
    if rev is None:
        raise GatewayError(404, "revocation_not_found", "No active revocation has this id (it may have expired).")
    return json_reply(rev.public())


ENDPOINTS = (create, list_all, delete)
