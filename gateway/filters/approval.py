"""The approval gate: a request the policy says needs approval waits here for people to decide.

Runs after the policy filter (it reads ``ex.annotations["policy_decision"]``). In order:

1. a grant for the request's fingerprint (the same principal sent the identical request within `grant_ttl_s` of
   its approval) lets it through at once;
2. otherwise the pending approval for this fingerprint is re-attached to (a retry after `approval_pending`), or a
   new one is requested, with a masked excerpt made by the caller-supplied ``excerpt_for``;
3. the exchange parks up to `hold_s`: approved -> continue; denied, expired or cancelled -> 403
   `approval_denied`; still pending -> 403 `approval_pending` with `approval_id` and `Retry-After`;
4. a client that disconnects while parked cancels the approval (shielded from that very cancellation).

The store being unreachable at any step gives 503 `approval_unavailable`: nothing is forwarded unapproved.
``ex.annotations["approval"]`` = ``{approval_id, state, deciders}`` names the approval in the audit record.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import structlog

from gateway.approvals.errors import ApprovalNotFound, ApprovalStoreUnavailable
from gateway.approvals.fingerprint import exchange_fingerprint
from gateway.approvals.model import APPROVED, DENIED, PENDING, Approval, Requester, new_approval_id
from gateway.approvals.settings import ApprovalSettings
from gateway.approvals.store import ApprovalStore
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.base import CONTINUE, Filter, Park, Respond, Verdict
from gateway.filters.policy import DECISION
from gateway.policy.engine import Decision

log = structlog.get_logger("gateway.approvals.gate")

APPROVAL = "approval"
"""``ex.annotations`` key: ``{"approval_id", "state", "deciders"}`` for the log and the audit record."""
PARK_MARGIN_S = 5.0
"""The chain's own park timeout is `hold_s` plus this: a backstop only, the gate ends the hold itself. A
cancellation well before it can therefore only be the client going away (see :meth:`ApprovalGate._hold`)."""

ExcerptFor = Callable[[Exchange], str | Awaitable[str]]
"""Makes the masked excerpt approvers see. Must never return unmasked request text."""


class ApprovalGate(Filter):
    name = "approval"

    def __init__(self, store: ApprovalStore, settings: ApprovalSettings, excerpt_for: ExcerptFor, *,
                 excerpt_max_chars: int = 2000, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.excerpt_for = excerpt_for
        self.excerpt_max_chars = excerpt_max_chars
        """Bounds what each pending approval holds (1,000 parked requests must stay small)."""
        self.clock = clock
        self._cleanups: set[asyncio.Task[Approval]] = set()
        """Cancellations still running after the client left (kept referenced until they finish)."""

    async def on_request(self, ex: Exchange) -> Verdict:
        decision = ex.annotations.get(DECISION)
        if not isinstance(decision, Decision) or decision.action != "require_approval":
            return CONTINUE
        if ex.principal is None or decision.approval is None:  # a wiring or policy mistake: fail closed
            return self._unavailable(ex, None, "This request needs approval and no approver could be determined.")
        fingerprint = await exchange_fingerprint(ex)
        try:
            grant = await self.store.find_grant(fingerprint)
            if grant is not None:
                return self._release(ex, grant)
            candidate = await self._candidate(ex, decision, fingerprint)
            try:
                approval, _ = await self.store.open(candidate)
            except asyncio.CancelledError:
                self._spawn_cancel(candidate.id)  # gone mid-write: withdraw it in case it was stored
                raise
        except (ApprovalStoreUnavailable, ApprovalNotFound):
            return self._unavailable(ex, None)
        self._annotate(ex, approval)
        park_timeout = self.settings.hold_s + PARK_MARGIN_S
        return Park(lambda: self._hold(ex, approval, park_timeout), park_timeout, self._pending_error(approval))

    async def _hold(self, ex: Exchange, approval: Approval, park_timeout: float) -> Verdict:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.settings.hold_s
        current = approval
        try:
            while current.state == PENDING and (remaining := deadline - loop.time()) > 0:
                current = await self.store.wait(current.id, remaining)
        except (ApprovalStoreUnavailable, ApprovalNotFound):
            return self._unavailable(ex, current.id)
        except asyncio.CancelledError:
            # Before the chain's backstop timeout a cancellation is the client leaving, not the hold ending.
            if loop.time() < started + park_timeout - PARK_MARGIN_S / 2:
                await self._cancel_for_disconnect(ex, current.id)
            raise
        return self._verdict(ex, current)

    def on_complete(self, ex: Exchange) -> None:
        """Safety net for a client that left before the hold began (between the approval being requested and the
        park starting, where no handler of ours runs): the proxy marks the exchange `client_disconnected`. A client
        that leaves while its `approval_pending` answer is being written keeps the approval: the hold was over."""
        info = ex.annotations.get(APPROVAL)
        if not (ex.annotations.get("client_disconnected") and isinstance(info, dict) and info.get("state") == PENDING):
            return
        if ex.error is not None and ex.error.code == "approval_pending":
            return
        self._spawn_cancel(str(info["approval_id"]))

    def _verdict(self, ex: Exchange, a: Approval) -> Verdict:
        self._annotate(ex, a)
        if a.state == APPROVED:
            return self._release(ex, a)
        if a.state == PENDING:
            ex.decision = "approval_pending"
            return Respond(self._pending_error(a))
        ex.decision = "approval_denied"
        message = {
            DENIED: f"An approver denied this request (rule {a.rule}).",
            "expired": f"The approval for this request (rule {a.rule}) expired undecided; send it again to ask anew.",
        }.get(a.state, f"The approval for this request (rule {a.rule}) was cancelled; send it again to ask anew.")
        return Respond(GatewayError(403, "approval_denied", message,
                                    extra={"approval_id": a.id, "approval_state": a.state}))

    def _release(self, ex: Exchange, a: Approval) -> Verdict:
        self._annotate(ex, a)
        ex.decision = "approved"
        return CONTINUE

    def _pending_error(self, a: Approval) -> GatewayError:
        return GatewayError(
            403, "approval_pending",
            f"This request is waiting for approval (rule {a.rule}); send the identical request again once approved.",
            headers={"Retry-After": str(self.settings.retry_after_s)},
            extra={"approval_id": a.id},
        )

    def _unavailable(self, ex: Exchange, approval_id: str | None, message: str | None = None) -> Verdict:
        ex.decision = "approval_unavailable"
        return Respond(GatewayError(
            503, "approval_unavailable",
            message or "This request needs approval and the approval service is unavailable; try again later.",
            headers={"Retry-After": str(self.settings.retry_after_s)},
            extra={"approval_id": approval_id} if approval_id else {},
        ))

    @staticmethod
    def _annotate(ex: Exchange, a: Approval) -> None:
        ex.annotations[APPROVAL] = {"approval_id": a.id, "state": a.state, "deciders": a.deciders}

    async def _candidate(self, ex: Exchange, decision: Decision, fingerprint: str) -> Approval:
        assert ex.principal is not None and decision.approval is not None
        excerpt = self.excerpt_for(ex)
        if inspect.isawaitable(excerpt):
            excerpt = await excerpt
        now = self.clock()
        return Approval(
            id=new_approval_id(),
            state=PENDING,
            rule=decision.rule or "",
            requester=Requester(ex.principal.sub, tuple(ex.principal.groups)),
            fingerprint=fingerprint,
            approver_groups=tuple(decision.approval.approver_groups),
            min_approvals=max(1, decision.approval.min_approvals),
            created_at=now,
            expires_at=now + self.settings.ttl_s,
            excerpt=str(excerpt)[: self.excerpt_max_chars],
            method=ex.method,
            path=ex.path.split("?", 1)[0],
            session_id=ex.session_id,
            request_id=ex.request_id,
        )

    async def _cancel_for_disconnect(self, ex: Exchange, approval_id: str) -> None:
        """Cancel the approval even though this task is being cancelled: the write runs in its own task."""
        task = self._spawn_cancel(approval_id)
        try:
            self._annotate(ex, await asyncio.shield(task))
        except asyncio.CancelledError:
            pass  # cancelled again: the cancellation write finishes in the background
        except Exception:
            pass  # logged by _cleanup_done

    def _spawn_cancel(self, approval_id: str) -> asyncio.Task[Approval]:
        task = asyncio.ensure_future(self.store.cancel(approval_id, "client_disconnected"))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanup_done)
        return task

    def _cleanup_done(self, task: asyncio.Task[Approval]) -> None:
        self._cleanups.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, ApprovalNotFound):
            log.warning("approval_cancel_failed", error=type(exc).__name__)
