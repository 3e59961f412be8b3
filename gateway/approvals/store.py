"""The one interface every approval store implements, and the logic the stores share.

A store keeps approvals, grants (fingerprint -> approved approval) and wakes waiters. Subclasses provide a few
primitives — load with a version token, compare-and-set, insert-or-attach, grant look-up, listing, wake-ups — and
this base runs the state machine (:mod:`gateway.approvals.machine`) over them, so the refusal rules are identical
for both backends. Every successful transition fires exactly one event (the writer whose compare-and-set won fires
it, on whichever replica that is).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import structlog

from gateway.approvals import machine
from gateway.approvals.errors import ApprovalNotFound, ApprovalStoreUnavailable
from gateway.approvals.model import PENDING, Approval, ApprovalPage

log = structlog.get_logger("gateway.approvals")

EventHook = Callable[[str, Approval], Awaitable[None]]
"""``on_event(kind, approval)``; kinds: approval.requested, approval.decided (every accepted decision: the
approval's state says whether it is final), approval.expired, approval.cancelled."""

MAX_CAS_ATTEMPTS = 16
MAX_ID_CHARS = 64


@runtime_checkable
class ApprovalStore(Protocol):
    on_event: EventHook | None

    async def open(self, candidate: Approval) -> tuple[Approval, bool]:
        """The pending approval for ``candidate.fingerprint`` if one is still open (False), else ``candidate``
        stored as new (True). A client retrying after `approval_pending` re-attaches instead of asking again."""
        ...

    async def get(self, approval_id: str, now: float | None = None) -> Approval:
        """The approval (expired by time is shown, and written, as expired). Raises ApprovalNotFound."""
        ...

    async def list(self, state: str | None = None, limit: int = 50, cursor: str | None = None) -> ApprovalPage:
        """Pending ones oldest first; otherwise newest first. ``cursor`` is the ``next`` of the previous page."""
        ...

    async def decide(self, approval_id: str, by: str, groups: tuple[str, ...] | list[str], decision: str,
                     reason: str = "", now: float | None = None) -> Approval:
        """Record a decision (see :func:`machine.decide` for the refusals). Returns the updated approval."""
        ...

    async def cancel(self, approval_id: str, reason: str = "client_disconnected",
                     now: float | None = None) -> Approval:
        """Cancel if still pending; an ended approval is returned unchanged."""
        ...

    async def find_grant(self, fingerprint: str, now: float | None = None) -> Approval | None:
        """The approved approval whose grant covers this fingerprint now, if any."""
        ...

    async def wait(self, approval_id: str, timeout: float) -> Approval:
        """Block until the approval changes (or ``timeout`` passes, or it expires) and return it as read then.
        Event-driven, no polling. It may return early while still pending (e.g. after another decider's partial
        approval, or a reconnect): callers loop while pending and time remains."""
        ...

    async def expire_due(self, now: float | None = None) -> list[Approval]:
        """Mark every overdue pending approval expired; returns those this call expired."""
        ...

    async def start(self) -> None:
        """Connect eagerly (optional: the first wait does it otherwise). Never raises for an unreachable store."""
        ...

    async def ping(self) -> None:
        """Raise ApprovalStoreUnavailable unless the store answers (for /readyz)."""
        ...

    async def close(self) -> None:
        ...


class Waiters:
    """Futures of parked requests, by approval id. One small future per waiter: no thread, no buffer."""

    def __init__(self) -> None:
        self._by_id: dict[str, set[asyncio.Future[None]]] = {}

    def add(self, approval_id: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._by_id.setdefault(approval_id, set()).add(fut)
        return fut

    def discard(self, approval_id: str, fut: asyncio.Future[None]) -> None:
        group = self._by_id.get(approval_id)
        if group is not None:
            group.discard(fut)
            if not group:
                del self._by_id[approval_id]

    def wake(self, approval_id: str) -> None:
        for fut in self._by_id.get(approval_id, ()):
            if not fut.done():
                fut.set_result(None)

    def wake_all(self) -> None:
        for approval_id in list(self._by_id):
            self.wake(approval_id)

    def __len__(self) -> int:
        return sum(len(g) for g in self._by_id.values())


class BaseApprovalStore:
    """Shared transitions over the primitives a backend provides (the ``_``-methods below)."""

    def __init__(self, grant_ttl_s: float, on_event: EventHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.grant_ttl_s = grant_ttl_s
        self.on_event = on_event
        self.clock = clock
        self.waiters = Waiters()

    # -- primitives --------------------------------------------------------------------------------------------
    async def _load(self, approval_id: str) -> tuple[Approval, Any] | None:
        """The approval and an opaque version token for :meth:`_cas`, or None."""
        raise NotImplementedError

    async def _cas(self, token: Any, old: Approval, new: Approval) -> bool:
        """Replace ``old`` (still at ``token``) with ``new``, update indexes and grants, wake waiters everywhere.
        False when someone else changed it first."""
        raise NotImplementedError

    async def _insert_or_attach(self, candidate: Approval, now: float) -> tuple[Approval, bool]:
        raise NotImplementedError

    async def _grant_id(self, fingerprint: str) -> str | None:
        raise NotImplementedError

    async def _due_ids(self, now: float) -> list[str]:
        raise NotImplementedError

    async def _ready_to_wait(self) -> None:
        """Make sure wake-ups will arrive before the state is read (Redis: the subscription is live)."""

    async def start(self) -> None:
        return None

    # -- shared logic -------------------------------------------------------------------------------------------
    async def open(self, candidate: Approval) -> tuple[Approval, bool]:
        approval, created = await self._insert_or_attach(candidate, self.clock())
        if created:
            await self._emit("approval.requested", approval)
        return approval, created

    async def get(self, approval_id: str, now: float | None = None) -> Approval:
        return await self._transition(approval_id, lambda a: a, now)

    async def decide(self, approval_id: str, by: str, groups: tuple[str, ...] | list[str], decision: str,
                     reason: str = "", now: float | None = None) -> Approval:
        at = self.clock() if now is None else now
        groups = tuple(groups)
        return await self._transition(
            approval_id, lambda a: machine.decide(a, by, groups, decision, reason, at, self.grant_ttl_s), at
        )

    async def cancel(self, approval_id: str, reason: str = "client_disconnected",
                     now: float | None = None) -> Approval:
        at = self.clock() if now is None else now
        return await self._transition(approval_id, lambda a: machine.cancel(a, at, reason), at)

    async def find_grant(self, fingerprint: str, now: float | None = None) -> Approval | None:
        at = self.clock() if now is None else now
        approval_id = await self._grant_id(fingerprint)
        loaded = await self._load(approval_id) if approval_id else None
        approval = loaded[0] if loaded else None
        return approval if machine.grants(approval, fingerprint, at) else None

    async def expire_due(self, now: float | None = None) -> list[Approval]:
        at = self.clock() if now is None else now
        expired = []
        for approval_id in await self._due_ids(at):
            loaded = await self._load(approval_id)
            if loaded is None or not machine.is_due(loaded[0], at):
                continue
            new = machine.expire_if_due(loaded[0], at)
            if await self._cas(loaded[1], loaded[0], new):
                await self._emit(machine.event_kind(loaded[0], new), new)
                expired.append(new)
        return expired

    async def wait(self, approval_id: str, timeout: float) -> Approval:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        await self._ready_to_wait()
        fut = self.waiters.add(approval_id)  # before reading, so a change in between still wakes us
        try:
            approval = await self.get(approval_id)
            if approval.state != PENDING:
                return approval
            remaining = min(deadline - loop.time(), approval.expires_at - self.clock())
            if remaining > 0:
                try:
                    await asyncio.wait_for(fut, remaining)
                except asyncio.TimeoutError:
                    pass
            return await self.get(approval_id)
        finally:
            self.waiters.discard(approval_id, fut)

    async def _transition(self, approval_id: str, step: Callable[[Approval], Approval],
                          now: float | None) -> Approval:
        """Load, expire if due, apply ``step``, compare-and-set; retry when another writer won the race."""
        at = self.clock() if now is None else now
        if not approval_id or len(approval_id) > MAX_ID_CHARS:
            raise ApprovalNotFound("No such approval.", approval_id)
        for _ in range(MAX_CAS_ATTEMPTS):
            loaded = await self._load(approval_id)
            if loaded is None:
                raise ApprovalNotFound("No such approval.", approval_id)
            current, token = loaded
            expired = machine.expire_if_due(current, at)
            if expired is not current:
                if not await self._cas(token, current, expired):
                    continue
                await self._emit("approval.expired", expired)
                if step(expired) is expired:  # terminal: the step may only refuse or leave it as it is
                    return expired
                continue
            new = step(current)  # may raise a typed refusal
            if new is current:
                return current
            if await self._cas(token, current, new):
                await self._emit(machine.event_kind(current, new), new)
                return new
        raise ApprovalStoreUnavailable("The approval is changing too fast to update; try again.", approval_id)

    async def _emit(self, kind: str, approval: Approval) -> None:
        """Tell the hook; its failure is logged and never undoes or blocks the transition."""
        hook = self.on_event
        if hook is None:
            return
        try:
            await hook(kind, approval)
        except Exception:
            log.exception("approval_event_hook_failed", kind=kind, approval_id=approval.id)


async def run_sweeper(store: ApprovalStore, interval_s: float) -> None:
    """Background task: expire overdue pending approvals so `approval.expired` fires even if nobody reads them.
    Reads expire lazily anyway; this only makes the event timely. Store outages are logged and retried."""
    while True:
        try:
            await store.expire_due()
        except ApprovalStoreUnavailable:
            log.warning("approval_sweep_unavailable")
        except Exception:
            log.exception("approval_sweep_failed")
        await asyncio.sleep(interval_s)
