"""Typed refusals of the approval store. Each carries the HTTP status and code the admin API answers with, so the
admin layer maps them without a table of its own; messages never contain payload text."""
from __future__ import annotations


class ApprovalError(Exception):
    """Base of every refusal; ``status`` and ``code`` are what an HTTP layer should answer."""

    status: int = 400
    code: str = "approval_error"

    def __init__(self, message: str, approval_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.approval_id = approval_id


class ApprovalNotFound(ApprovalError):
    """No approval with this id (never existed, or past its retention)."""

    status, code = 404, "approval_not_found"


class InvalidDecision(ApprovalError):
    """The decision is neither `approve` nor `deny`, or the reason is too long."""

    status, code = 400, "invalid_decision"


class SelfApproval(ApprovalError):
    """The decider is the requester: nobody approves their own request."""

    status, code = 403, "self_approval"


class NotAnApprover(ApprovalError):
    """The decider is in none of the rule's approver groups."""

    status, code = 403, "not_an_approver"


class AlreadyDecided(ApprovalError):
    """This person already decided this approval: each person counts once, a second decision is refused."""

    status, code = 409, "already_decided"


class NotPending(ApprovalError):
    """The approval is no longer pending (approved, denied, expired — also by time alone — or cancelled)."""

    status, code = 409, "approval_not_pending"

    def __init__(self, message: str, approval_id: str | None = None, state: str = "") -> None:
        super().__init__(message, approval_id)
        self.state = state


class ApprovalStoreUnavailable(ApprovalError):
    """The store cannot be reached or did not answer in time. Requests needing approval get 503
    `approval_unavailable`; nothing is forwarded unapproved."""

    status, code = 503, "approval_unavailable"
