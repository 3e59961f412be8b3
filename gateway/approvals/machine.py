"""The approval state machine as pure functions: pending -> approved | denied | expired | cancelled.

Both stores run these same functions and only differ in how they swap the old record for the new one atomically,
so the rules (who may decide, how approvals count, when time runs out) live in one place. A function returns the
record unchanged (the same object) when there is nothing to do, and raises a typed refusal when the request to
change it must be refused. Terminal states never change.
"""
from __future__ import annotations

from dataclasses import replace

from gateway.approvals.errors import AlreadyDecided, InvalidDecision, NotAnApprover, NotPending, SelfApproval
from gateway.approvals.model import (
    APPROVED,
    CANCELLED,
    DENIED,
    EXPIRED,
    PENDING,
    Approval,
    DecisionRecord,
)

MAX_REASON_CHARS = 2000
DECISIONS = ("approve", "deny")


def is_due(a: Approval, now: float) -> bool:
    """Pending past its expiry time: expired in effect, even if no sweeper has written it yet."""
    return a.state == PENDING and now >= a.expires_at


def expire_if_due(a: Approval, now: float) -> Approval:
    if not is_due(a, now):
        return a
    return replace(a, state=EXPIRED, decided_at=a.expires_at, end_reason="ttl")


def decide(
    a: Approval,
    by: str,
    groups: tuple[str, ...] | list[str] | frozenset[str],
    decision: str,
    reason: str,
    now: float,
    grant_ttl_s: float,
) -> Approval:
    """Record one person's decision. Refusals are checked in this order: malformed, self-approval, not an approver,
    not pending (incl. expired by time), already decided by this person."""
    if decision not in DECISIONS:
        raise InvalidDecision("The decision must be 'approve' or 'deny'.", a.id)
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidDecision(f"The reason is longer than {MAX_REASON_CHARS} characters.", a.id)
    if not by:
        raise NotAnApprover("The decider has no subject.", a.id)
    if by == a.requester.sub:
        raise SelfApproval("The requester cannot decide their own approval.", a.id)
    if not set(groups) & set(a.approver_groups):
        raise NotAnApprover(f"Only members of {', '.join(a.approver_groups) or 'no group'} may decide this approval.",
                            a.id)
    state = EXPIRED if is_due(a, now) else a.state
    if state != PENDING:
        raise NotPending(f"The approval is {state}; only pending approvals can be decided.", a.id, state)
    if any(d.by == by for d in a.decisions):
        raise AlreadyDecided("You already decided this approval; each person counts once.", a.id)
    record = DecisionRecord(by=by, decision=decision, reason=reason, at=now)  # type: ignore[arg-type]
    decided = replace(a, decisions=a.decisions + (record,))
    if decision == "deny":
        return replace(decided, state=DENIED, decided_at=now)
    if len(decided.approvers) >= max(1, a.min_approvals):
        return replace(decided, state=APPROVED, decided_at=now, grant_expires_at=now + grant_ttl_s)
    return decided


def cancel(a: Approval, now: float, reason: str) -> Approval:
    """Withdraw a pending approval (the waiting client went away). Anything already ended stays as it is."""
    if a.state != PENDING:
        return a
    if is_due(a, now):
        return expire_if_due(a, now)
    return replace(a, state=CANCELLED, decided_at=now, end_reason=reason)


def event_kind(old: Approval, new: Approval) -> str:
    """The event a transition from ``old`` to ``new`` announces."""
    if new.state == EXPIRED:
        return "approval.expired"
    if new.state == CANCELLED:
        return "approval.cancelled"
    if len(new.decisions) > len(old.decisions):
        return "approval.decided"
    return "approval.updated"


def grants(a: Approval | None, fingerprint: str, now: float) -> bool:
    """Whether ``a`` lets the request with ``fingerprint`` through at ``now``."""
    return (
        a is not None
        and a.state == APPROVED
        and a.fingerprint == fingerprint
        and a.grant_expires_at is not None
        and now < a.grant_expires_at
    )
