"""The shared-state services of one gateway process: revocations, webhooks and the events hub between them and the
audit log (approvals join them in the same way). Built from settings by `build_services`, started and stopped by
the application's lifecycle, in that order and in reverse.

Several processes (`--workers N`, replicas) must share this state through Redis: an in-memory revocation list
would let a revoked token through every process but the one that was told.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from gateway.approvals import ApprovalStore, create_store, run_sweeper
from gateway.audit.service import AuditLog
from gateway.config import Settings
from gateway.events import Events
from gateway.revocation import LiveExchanges, RevocationStore, build_store
from gateway.webhooks import Dispatcher

log = structlog.get_logger("gateway.services")


class SharedStateError(Exception):
    """The configuration shares nothing between processes although several will run."""


@dataclass
class Services:
    revocations: RevocationStore
    live: LiveExchanges
    approvals: ApprovalStore
    sweep_interval_s: float
    webhooks: Dispatcher | None
    events: Events
    _sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.revocations.start()
        await self.approvals.start()
        self._sweeper = asyncio.create_task(run_sweeper(self.approvals, self.sweep_interval_s),
                                            name="approval-sweeper")
        if self.webhooks is not None:
            await self.webhooks.start()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.webhooks is not None:
            with contextlib.suppress(Exception):
                await self.webhooks.stop(drain_timeout=5.0)
        await self.approvals.close()
        await self.revocations.close()

    def revocations_status(self) -> tuple[bool, dict]:
        store = self.revocations
        return store.fresh, {"backend": type(store).__name__, "fresh": store.fresh}


def redis_url(settings: Settings) -> str | None:
    """The Redis that replicas share (revocations, approvals, session heads), if one is configured: either
    section's `redis_url` serves the other when it names none."""
    if "redis" not in (settings.revocations.backend, settings.approvals.backend):
        return None
    return settings.revocations.redis_url or settings.approvals.redis_url


def check_shared_state(settings: Settings, workers: int) -> None:
    if workers > 1 and settings.revocations.backend == "memory":
        raise SharedStateError(
            f"{workers} worker processes would each keep their own revocation list (revocations.backend: memory): "
            "a token revoked through one would still pass the others. Set revocations.backend: redis with a "
            "redis_url, or run one process per replica.")
    if workers > 1 and settings.approvals.backend == "memory":
        raise SharedStateError(
            f"{workers} worker processes would each keep their own approvals (approvals.backend: memory): a "
            "request parked on one would never see a decision made through another. Set approvals.backend: redis.")


def build_services(settings: Settings, audit: AuditLog | None) -> Services:
    webhooks = None
    events = Events(audit, None)
    if settings.webhooks.endpoints:
        webhooks = Dispatcher(settings.webhooks, dead_letter=events.dead_letter)
        events.webhooks = webhooks
    if audit is not None:
        audit.on_digest = events.digest_published
    revocations = build_store(settings.revocations, redis_url=redis_url(settings), on_event=events.revocation)
    live = LiveExchanges()
    live.attach(revocations)
    approval_settings = settings.approvals
    if approval_settings.backend == "redis" and not approval_settings.redis_url:
        approval_settings = approval_settings.model_copy(update={"redis_url": redis_url(settings)})
    approvals = create_store(approval_settings, on_event=events.approval)
    return Services(revocations=revocations, live=live, approvals=approvals,
                    sweep_interval_s=settings.approvals.sweep_interval_s, webhooks=webhooks, events=events)
