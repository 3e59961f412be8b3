"""The approval record: who asked, for what (bound by fingerprint), who must decide, and what they decided.

Records are immutable; a transition (:mod:`gateway.approvals.machine`) makes a new one, which is what lets the
Redis store swap them with compare-and-set. Times are epoch seconds internally (cheap to compare, one clock for
every replica) and RFC 3339 in the public form.
"""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

State = Literal["pending", "approved", "denied", "expired", "cancelled"]
PENDING: State = "pending"
APPROVED: State = "approved"
DENIED: State = "denied"
EXPIRED: State = "expired"
CANCELLED: State = "cancelled"
STATES: tuple[State, ...] = (PENDING, APPROVED, DENIED, EXPIRED, CANCELLED)
TERMINAL: frozenset[str] = frozenset({APPROVED, DENIED, EXPIRED, CANCELLED})


def new_approval_id() -> str:
    """Random, so ids from different replicas never collide. Not a secret: it is shown to the requester."""
    return "apr_" + secrets.token_hex(10)


def rfc3339(ts: float | None) -> str | None:
    """``2025-01-02T03:04:05.678Z`` (UTC, milliseconds), or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Requester:
    sub: str
    """Subject of the caller whose request waits."""
    groups: tuple[str, ...] = ()
    """The caller's groups when the request was made."""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    by: str
    """Subject of the approver."""
    decision: Literal["approve", "deny"]
    reason: str
    """Free text the approver gave (shown to approvers and auditors, never to the requester)."""
    at: float
    """Epoch seconds."""


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    state: State
    rule: str
    """Name of the policy rule that asked for approval."""
    requester: Requester
    fingerprint: str
    """sha256 over principal, method, path and canonical body hash: the one request this approval can release."""
    approver_groups: tuple[str, ...]
    """Members of any of these groups may decide (never the requester)."""
    min_approvals: int
    """Distinct approvers needed; any single deny ends it."""
    created_at: float
    expires_at: float
    """A pending approval becomes expired at this time, whether or not anyone looks."""
    excerpt: str = ""
    """Masked excerpt of the request for approvers (made by the caller; raw text never enters the store)."""
    method: str = ""
    path: str = ""
    """Request path without the query (the query takes part in the fingerprint only)."""
    session_id: str = ""
    request_id: str = ""
    """Id of the exchange that created the approval."""
    decisions: tuple[DecisionRecord, ...] = ()
    decided_at: float | None = None
    """When the approval left `pending` (approved, denied, expired or cancelled)."""
    end_reason: str = ""
    """Why it ended without a decision (`client_disconnected`, `ttl`, ...); empty otherwise."""
    grant_expires_at: float | None = None
    """Approved: the identical request passes without a new approval until this time."""

    @property
    def approvers(self) -> list[str]:
        """Distinct subjects who approved, in order."""
        return [d.by for d in self.decisions if d.decision == "approve"]

    @property
    def deciders(self) -> list[str]:
        """Everyone who decided (approve or deny), in order: what the forwarded request's audit record names."""
        return [d.by for d in self.decisions]

    def to_dict(self) -> dict[str, Any]:
        """Complete storage form (JSON-serialisable); :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Approval":
        req = d["requester"]
        return cls(
            **{k: v for k, v in d.items() if k not in ("requester", "decisions", "approver_groups")},
            requester=Requester(req["sub"], tuple(req.get("groups", ()))),
            approver_groups=tuple(d.get("approver_groups", ())),
            decisions=tuple(DecisionRecord(**x) for x in d.get("decisions", ())),
        )

    def to_public(self) -> dict[str, Any]:
        """What the admin API shows: masked excerpt, who, rule, times in RFC 3339; no fingerprint."""
        return {
            "id": self.id,
            "state": self.state,
            "rule": self.rule,
            "requester": {"sub": self.requester.sub, "groups": list(self.requester.groups)},
            "method": self.method,
            "path": self.path,
            "excerpt": self.excerpt,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "decided_at": rfc3339(self.decided_at),
            "end_reason": self.end_reason or None,
            "grant_expires_at": rfc3339(self.grant_expires_at),
            "approver_groups": list(self.approver_groups),
            "min_approvals": self.min_approvals,
            "approval_count": len(self.approvers),
            "decisions": [
                {"by": d.by, "decision": d.decision, "reason": d.reason, "at": rfc3339(d.at)} for d in self.decisions
            ],
            "session_id": self.session_id,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class ApprovalPage:
    """One page of a listing: items and an opaque cursor for the next page (None at the end)."""

    approvals: list[Approval] = field(default_factory=list)
    next: str | None = None
