"""Mounting the admin API on an application.

The admin routes must be added *before* the proxy's catch-all route (`/{tail:.*}` in `gateway.app`): aiohttp
resolves routes in the order they were added, and the catch-all answers 404 for every reserved path.
"""
from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from gateway.admin import evidence, sessions
from gateway.admin.context import AdminContext
from gateway.admin.framework import AdminEndpoint, bind

ADMIN = web.AppKey("admin", AdminContext)

INVESTIGATOR_ENDPOINTS: tuple[AdminEndpoint, ...] = (*sessions.ENDPOINTS, *evidence.ENDPOINTS)
"""Sessions (list, show, replay, verify, export) and the log (verify, digest)."""


def admin_routes(ctx: AdminContext, endpoints: Iterable[AdminEndpoint] = INVESTIGATOR_ENDPOINTS) -> list[web.RouteDef]:
    """aiohttp routes serving `endpoints` (default: the investigator endpoints) with `ctx`."""
    return [bind(ep, ctx) for ep in endpoints]


def setup_admin(app: web.Application, ctx: AdminContext,
                endpoints: Iterable[AdminEndpoint] = INVESTIGATOR_ENDPOINTS) -> None:
    """Add the admin routes to `app` (before its catch-all route) and keep `ctx` at `app[ADMIN]`."""
    app[ADMIN] = ctx
    app.router.add_routes(admin_routes(ctx, endpoints))
