"""Application factory: wires settings, the filter chain, the forwarder and the operational endpoints."""
from __future__ import annotations

import json
import os

import aiohttp
import structlog
from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.catalog import CatalogRegistry
from gateway.auth.oidc import OidcVerifier
from gateway.config import Settings
from gateway.errors import GatewayError, dialect_for, error_bytes
from gateway.admin import ADMIN, INVESTIGATOR_ENDPOINTS, AdminContext, setup_admin
from gateway.admin import approvals as approval_endpoints
from gateway.admin import revocations as revocation_endpoints
from gateway.admin.console import console_routes
from gateway.audit.chain import store_head_loader
from gateway.audit.service import AuditLog, store_options
from gateway.audit.store import store_from_uri
from gateway.filters.auth import AuthFilter
from gateway.filters.base import Filter
from gateway.filters.notify import NotifyFilter
from gateway.filters.revocation import RevocationFilter
from gateway.filters.chain import FilterChain
from gateway.forwarder import Forwarder
from gateway.health import Readiness
from gateway.metrics import Metrics
from gateway.paths import is_reserved
from gateway.policy.reload import PolicyStore
from gateway.policy.source import PolicyError
from gateway.pipeline import policy_filters
from gateway.proxy import ProxyHandler
from gateway.services import Services, build_services, redis_url

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
CHAIN = web.AppKey("chain", FilterChain)
FORWARDER = web.AppKey("forwarder", Forwarder)
VERIFIER = web.AppKey("verifier", OidcVerifier)
READINESS = web.AppKey("readiness", Readiness)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
POLICY_STORE = web.AppKey("policy_store", PolicyStore)
AUDIT = web.AppKey("audit", AuditLog)
SERVICES = web.AppKey("services", Services)

log = structlog.get_logger("gateway.app")


def build_app(settings: Settings) -> web.Application:
    # +1: aiohttp refuses a body that *reaches* client_max_size; ours may be exactly max_body_bytes.
    app = web.Application(client_max_size=settings.server.max_body_bytes + 1)
    metrics = Metrics()
    verifier = OidcVerifier(
        settings.auth, retry_initial_s=settings.auth.jwks_retry_initial_s, retry_max_s=settings.auth.jwks_retry_max_s
    )
    forwarder = Forwarder(settings.upstream, settings.server)
    readiness = Readiness()
    readiness.add("idp", lambda: (verifier.ready, verifier.status()))
    store = build_policy(settings, metrics)
    audit = build_audit(settings)
    if audit is not None:
        app[AUDIT] = audit
        readiness.add("audit", audit.status)
    else:
        log.warning("no_audit", detail="audit.store is not set: exchanges are not recorded")
    services = app[SERVICES] = build_services(settings, audit)
    readiness.add("revocations", services.revocations_status)
    # notify first: its completion hook runs last, once the outcome is final
    filters: list[Filter] = [NotifyFilter(services.events), AuthFilter(verifier),
                             RevocationFilter(services.revocations)]
    if store is not None:
        app[POLICY_STORE] = store
        try:
            filters += policy_filters(settings, store, audit, services.approvals)
        except ValueError as exc:  # e.g. keyed_hash without masking.hmac_key
            raise PolicyStartupError(f"masking: {exc}") from None
        readiness.add("policy", lambda: (True, store.status()))  # a stale policy still serves the last good one
    else:
        log.warning("no_policy", detail="policies.path is not set: requests are forwarded without policy or masking")
        readiness.add("policy", lambda: (True, {"enabled": False}))
    chain = FilterChain(filters)

    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[VERIFIER] = verifier
    app[FORWARDER] = forwarder
    app[CHAIN] = chain
    app[READINESS] = readiness
    app.cleanup_ctx.append(_lifecycle)

    access_log = AccessLog()
    app[ACCESS_LOG] = access_log
    proxy = ProxyHandler(settings, chain, forwarder, metrics, access_log, live=services.live)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app[revocation_endpoints.REVOCATIONS] = services.revocations
    # before the catch-all: routes match in order
    app[approval_endpoints.APPROVALS] = services.approvals
    setup_admin(app, admin_context(settings, verifier, audit),
                [*INVESTIGATOR_ENDPOINTS, *revocation_endpoints.ENDPOINTS, *approval_endpoints.ENDPOINTS])
    app.router.add_routes(console_routes())
    app.router.add_route("*", "/{tail:.*}", _dispatch(proxy))
    return app


async def _lifecycle(app: web.Application):
    await app[FORWARDER].start()
    idp_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=app[SETTINGS].auth.http_timeout_s))
    await app[VERIFIER].start(idp_session)
    store = app.get(POLICY_STORE)
    if store is not None and app[SETTINGS].policies.reload_s > 0:
        store.start()
    audit = app.get(AUDIT)
    try:
        if audit is not None:
            await audit.start()  # AuditStartupError: the process refuses to start
            app[ADMIN].public_keys.append(audit.public_key)
        await app[SERVICES].start()
    except BaseException:
        await app[VERIFIER].close()
        await idp_session.close()
        await app[FORWARDER].close()
        raise
    yield
    await app[SERVICES].stop()
    if store is not None:
        await store.stop()
    if audit is not None:
        await audit.stop()
    await app[VERIFIER].close()
    await idp_session.close()
    await app[FORWARDER].close()
    app[ACCESS_LOG].flush()


class PolicyStartupError(Exception):
    """The policy named in the configuration cannot be loaded; the message lists file:line problems."""


def build_policy(settings: Settings, metrics: Metrics) -> PolicyStore | None:
    if not settings.policies.path:
        return None
    store = PolicyStore(
        settings.policies.path,
        CatalogRegistry(),
        interval_s=settings.policies.reload_s or 2.0,
        on_error=lambda err: metrics.policy_reload_failures.inc(),
    )
    try:
        store.load()
    except PolicyError as exc:
        raise PolicyStartupError(str(exc)) from None
    return store


def admin_context(settings: Settings, verifier: OidcVerifier, audit: AuditLog | None) -> AdminContext:
    if audit is not None:
        return AdminContext(verifier=verifier, settings=settings.admin, record_admin=audit.record_admin,
                            store=audit.store, latest_digests=audit.latest_digests)

    async def log_only(principal, action: str, detail: dict) -> None:
        # no audit log configured (start-up warned): the structured log is the only trace of admin calls
        log.info("admin_call", sub=principal.sub, action=action, outcome=detail.get("outcome"))

    return AdminContext(verifier=verifier, settings=settings.admin, record_admin=log_only)


def build_audit(settings: Settings) -> AuditLog | None:
    """The audit log; with a shared Redis, session chain heads live there, so replicas writing one session
    extend one chain instead of forking it."""
    if not settings.audit.store:
        return None
    store = store_from_uri(settings.audit.store, **store_options(settings.audit, settings.audit.store))
    heads = None
    url = redis_url(settings)
    if url:
        from gateway.audit.redis_heads import RedisSessionHeads  # Redis client: imported only when used

        heads = RedisSessionHeads(url, recover=store_head_loader(store))
    spool_dir = settings.audit.spool_dir
    worker = os.environ.get("GATEWAY_WORKER_INDEX")
    if worker is not None:  # `serve --workers N`: one writer stream, and so one spool, per process
        spool_dir = os.path.join(spool_dir, f"worker-{int(worker)}")
    return AuditLog(settings.audit, spool_dir=spool_dir, heads=heads, store=store)


def _dispatch(proxy: ProxyHandler):
    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0]
        if is_reserved(path):
            # Reserved for the gateway (admin API, dev endpoints): never forwarded to the backend.
            err = GatewayError(404, "not_found", f"No gateway endpoint at {path.split('/')[1]!r}.")
            return web.Response(status=404, body=error_bytes(err, dialect_for(path, request.headers)),
                                content_type="application/json")
        return await proxy(request)

    return handler


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready, detail = request.app[READINESS].report()
    body = json.dumps({"ready": ready, "checks": detail}, default=str)
    return web.Response(status=200 if ready else 503, text=body, content_type="application/json")


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})
