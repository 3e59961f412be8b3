"""The admin endpoint frame: authenticate, authorise, audit, then run the handler — in that order, for every call.

An endpoint is declared once with the role it needs and the action name its audit record carries::

    @endpoint("GET", "/admin/sessions/{id}", action="sessions.show", role=Role.INVESTIGATOR)
    async def show(request: web.Request, call: AdminCall) -> web.StreamResponse: ...

and bound to an `AdminContext` by `bind` (see `routes.admin_routes`). The frame guarantees:

1. a missing or bad token ends with 401 before anything else (no principal, so nothing to audit);
2. once the caller is known, `ctx.record_admin(principal, action, detail)` runs *before* the handler, for allowed
   and refused calls alike; if it raises, the reply is 503 `audit_unavailable` and the handler never runs, so no
   admin action is ever performed or returned unaudited (write-ahead, which also covers non-idempotent actions);
3. a caller without the role gets 403 `forbidden` (after its attempt was audited);
4. a `GatewayError` the handler raises before it starts streaming becomes the JSON error reply (any other
   exception a bare 500 `internal_error`); once streaming, a failure aborts the connection (never a clean end).

`detail` is ``{"params": {...}, "outcome": "allowed" | "forbidden", "role": <needed role>}``; `params` are the
path parameters and the query string by default (each value cut to 256 characters), or what the endpoint's
`describe` returns (an endpoint with a body picks the fields worth keeping). Tokens and bodies are never logged.
"""
from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiohttp import web

from gateway.admin.bearer import bearer_token
from gateway.admin.context import AdminContext, Role, roles_for
from gateway.admin.errors import (
    audit_disabled,
    audit_not_recorded,
    error_response,
    forbidden,
    internal_error,
)
from gateway.audit.store import ObjectStore
from gateway.errors import GatewayError
from gateway.principal import Principal

log = structlog.get_logger("gateway.admin")

MAX_PARAM_CHARS = 256
MAX_PARAMS = 32


@dataclass
class AdminCall:
    """One admin call that passed authentication, authorisation and auditing: what a handler works with."""

    ctx: AdminContext
    """The services."""
    principal: Principal
    """Who is calling."""
    roles: frozenset[Role]
    """Every role the caller holds (a handler may show more to an admin)."""
    action: str
    """The endpoint's action name, as audited."""
    response: web.StreamResponse | None = None
    """Set by `stream` once the reply has started: errors after that can no longer become a JSON reply."""

    @property
    def store(self) -> ObjectStore:
        """The audit store, or 503 `audit_unavailable` when audit is disabled."""
        if self.ctx.store is None:
            raise audit_disabled()
        return self.ctx.store

    async def stream(self, request: web.Request, content_type: str, *, status: int = 200,
                     headers: dict[str, str] | None = None) -> web.StreamResponse:
        """Start a streamed reply (written with `write`, ended with `write_eof`)."""
        resp = web.StreamResponse(status=status, headers={"Content-Type": content_type, "Cache-Control": "no-store",
                                                          **(headers or {})})
        self.response = resp
        await resp.prepare(request)
        return resp


Handler = Callable[[web.Request, AdminCall], Awaitable[web.StreamResponse]]
Describe = Callable[[web.Request], Awaitable[dict[str, Any]]]


def _cut(value: str) -> str:
    return value if len(value) <= MAX_PARAM_CHARS else value[:MAX_PARAM_CHARS] + "…"


async def request_params(request: web.Request) -> dict[str, Any]:
    """Path parameters and query string, bounded (an audit record must stay small whatever the client sends)."""
    params: dict[str, Any] = {k: _cut(v) for k, v in request.match_info.items()}
    for name in list(dict.fromkeys(request.query))[:MAX_PARAMS]:
        values = [_cut(v) for v in request.query.getall(name)][:MAX_PARAMS]
        params.setdefault(_cut(name), values[0] if len(values) == 1 else values)
    return params


@dataclass(frozen=True)
class AdminEndpoint:
    """An admin route: method, path, the roles that may call it (any one suffices), and its audit action."""

    method: str
    path: str
    action: str
    roles: frozenset[Role]
    handler: Handler
    describe: Describe = field(default=request_params)

    def __call__(self, request: web.Request, call: AdminCall) -> Awaitable[web.StreamResponse]:
        return self.handler(request, call)


def endpoint(method: str, path: str, *, action: str, role: Role | Iterable[Role],
             describe: Describe | None = None) -> Callable[[Handler], AdminEndpoint]:
    """Declare an admin endpoint. `role`: the role (or roles, any of which suffices) it needs; admins always may."""
    roles = frozenset([role] if isinstance(role, Role) else role) | {Role.ADMIN}

    def wrap(handler: Handler) -> AdminEndpoint:
        return AdminEndpoint(method, path, action, roles, handler, describe or request_params)

    return wrap


def _needed(roles: frozenset[Role]) -> str:
    named = sorted(r.value for r in roles if r is not Role.ADMIN) or [Role.ADMIN.value]
    return " or ".join(named)


async def serve(ep: AdminEndpoint, ctx: AdminContext, request: web.Request) -> web.StreamResponse:
    """Run one admin call through the frame (see the module docstring)."""
    call: AdminCall | None = None
    try:
        principal = await ctx.verifier.verify(bearer_token(request.headers))
        roles = roles_for(principal, ctx.settings)
        allowed = bool(roles & ep.roles)
        detail = {"params": await _describe(ep, request), "outcome": "allowed" if allowed else "forbidden",
                  "role": _needed(ep.roles)}
        try:
            await ctx.record_admin(principal, ep.action, detail)
        except Exception as exc:  # noqa: BLE001 - whatever broke, the call must not go ahead unaudited
            log.warning("admin_audit_failed", action=ep.action, error=exc.__class__.__name__)
            raise audit_not_recorded() from None
        if not allowed:
            log.info("admin_forbidden", action=ep.action, sub=principal.sub)
            raise forbidden(_needed(ep.roles))
        call = AdminCall(ctx, principal, roles, ep.action)
        resp = await ep.handler(request, call)
        if not resp.prepared:
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp
    except Exception as exc:
        if call is not None and call.response is not None:
            return _cut_short(request, call.response, ep, exc)
        if isinstance(exc, GatewayError):
            return error_response(exc)
        # class and place only: an exception's message or traceback may quote record content
        log.error("admin_handler_error", action=ep.action, error=exc.__class__.__name__, where=_where(exc))
        return error_response(internal_error())


async def _describe(ep: AdminEndpoint, request: web.Request) -> dict[str, Any]:
    """The audited params; a `describe` that fails must not stop the call from being audited (or refused)."""
    try:
        return await ep.describe(request)
    except Exception as exc:  # noqa: BLE001
        return {"unreadable": exc.__class__.__name__}


def _cut_short(request: web.Request, resp: web.StreamResponse, ep: AdminEndpoint,
               exc: Exception) -> web.StreamResponse:
    """The reply had started when `exc` came. A client that left (ConnectionError) needs nothing more; otherwise
    the connection is aborted, since ending the body cleanly would pass a truncated replay or listing for whole."""
    if not isinstance(exc, ConnectionError):
        log.error("admin_stream_error", action=ep.action, error=exc.__class__.__name__, where=_where(exc))
        if request.transport is not None:
            request.transport.abort()
    return resp


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def bind(ep: AdminEndpoint, ctx: AdminContext) -> web.RouteDef:
    """The aiohttp route serving `ep` with `ctx`."""
    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve(ep, ctx, request)

    handler.__name__ = handler.__qualname__ = f"admin:{ep.action}"
    return web.route(ep.method, ep.path, handler)


def json_reply(obj: Any, *, status: int = 200) -> web.Response:
    """A JSON reply (orjson: session listings and verification results can be large)."""
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")
