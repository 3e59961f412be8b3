"""Approval endpoints (approvers): the inbox, one approval with its masked excerpt, and the decision.

- `GET /admin/approvals?state=pending&limit=&cursor=` → ``{"approvals": [...], "next": cursor|null}``;
- `GET /admin/approvals/{id}` → the approval (`excerpt` is masked; the raw request is never stored);
- `POST /admin/approvals/{id}/decision` body ``{"decision": "approve"|"deny", "reason": "..."}`` → the updated
  approval. The store refuses the requester (403 `self_approval`), people outside the rule's approver groups (403
  `not_an_approver`), a second decision by the same person (409 `already_decided`) and decisions on approvals no
  longer pending (409 `approval_not_pending`, expired by time included).

Every call is audited by the admin frame before it runs; each state change is also an `approval` record and a
webhook (through the store's event hook).
"""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.admin import params
from gateway.admin.context import Role
from gateway.admin.errors import invalid_param, invalid_request
from gateway.admin.framework import AdminCall, endpoint, json_reply
from gateway.approvals import STATES, ApprovalError, ApprovalStore
from gateway.errors import GatewayError

APPROVALS = web.AppKey("approvals", ApprovalStore)  # type: ignore[type-abstract]
MAX_BODY = 16 * 1024
MAX_LIMIT = 500


def _as_gateway_error(exc: ApprovalError) -> GatewayError:
    extra = {"approval_id": exc.approval_id} if exc.approval_id else {}
    state = getattr(exc, "state", "")
    if state:
        extra["state"] = state
    headers = {"Retry-After": "2"} if exc.status == 503 else {}
    return GatewayError(exc.status, exc.code, exc.message, headers=headers, extra=extra)


def _limit(query: Any) -> int:
    raw = query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid_param("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


@endpoint("GET", "/admin/approvals", action="approvals.list", role=Role.APPROVER)
async def list_approvals(request: web.Request, call: AdminCall) -> web.StreamResponse:
    params.check_query(request.query, ("state", "limit", "cursor"))
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        raise invalid_param("state", f"state must be one of {', '.join(STATES)}.")
    try:
        page = await request.app[APPROVALS].list(state, _limit(request.query), request.query.get("cursor") or None)
    except ApprovalError as exc:
        raise _as_gateway_error(exc) from None
    return json_reply({"approvals": [a.to_public() for a in page.approvals], "next": page.next})


@endpoint("GET", "/admin/approvals/{id}", action="approvals.show", role=Role.APPROVER)
async def show(request: web.Request, call: AdminCall) -> web.StreamResponse:
    params.check_query(request.query, ())
    try:
        approval = await request.app[APPROVALS].get(request.match_info["id"])
    except ApprovalError as exc:
        raise _as_gateway_error(exc) from None
    return json_reply(approval.to_public())


async def describe_decision(request: web.Request) -> dict[str, Any]:
    """The admin record names the approval and the decision (the reason goes into the approval record)."""
    out: dict[str, Any] = {"path": request.path}
    try:
        body = orjson.loads(await request.read())
        if isinstance(body, dict) and isinstance(body.get("decision"), str):
            out["decision"] = body["decision"][:16]
    except (orjson.JSONDecodeError, web.HTTPException):
        pass
    return out


@endpoint("POST", "/admin/approvals/{id}/decision", action="approvals.decide", role=Role.APPROVER,
          describe=describe_decision)
async def decide(request: web.Request, call: AdminCall) -> web.StreamResponse:
    params.check_query(request.query, ())
    body = await params.json_object(request, max_bytes=MAX_BODY,
                                    usage='{"decision": "approve"|"deny", "reason": "..."}')
    if set(body) - {"decision", "reason"}:
        raise invalid_request('The body takes exactly "decision" and an optional "reason".')
    decision, reason = body.get("decision"), body.get("reason", "")
    if decision not in ("approve", "deny"):
        raise invalid_param("decision", 'decision must be "approve" or "deny".')
    if not isinstance(reason, str):
        raise invalid_param("reason", "reason must be a string.")
    try:
        approval = await request.app[APPROVALS].decide(request.match_info["id"], call.principal.sub,
                                                       list(call.principal.groups), decision, reason)
    except ApprovalError as exc:
        raise _as_gateway_error(exc) from None
    return json_reply(approval.to_public())


ENDPOINTS = (list_approvals, show, decide)
