"""Just-in-time approvals: the state machine, its stores (memory, Redis) and their settings.

The gate that parks exchanges is :class:`gateway.filters.approval.ApprovalGate`.
"""
from __future__ import annotations

from gateway.approvals.errors import (
    AlreadyDecided,
    ApprovalError,
    ApprovalNotFound,
    ApprovalStoreUnavailable,
    InvalidDecision,
    NotAnApprover,
    NotPending,
    SelfApproval,
)
from gateway.approvals.fingerprint import body_sha256, exchange_fingerprint, fingerprint
from gateway.approvals.memory import MemoryApprovalStore
from gateway.approvals.model import STATES, Approval, ApprovalPage, DecisionRecord, Requester
from gateway.approvals.settings import ApprovalSettings
from gateway.approvals.store import ApprovalStore, EventHook, run_sweeper


def create_store(settings: ApprovalSettings, on_event: EventHook | None = None) -> ApprovalStore:
    """The store the settings name. The Redis one connects lazily: nothing is awaited here."""
    if settings.backend == "redis":
        from gateway.approvals.redis_store import RedisApprovalStore

        return RedisApprovalStore.from_settings(settings, on_event)
    return MemoryApprovalStore.from_settings(settings, on_event)


__all__ = [
    "AlreadyDecided", "Approval", "ApprovalError", "ApprovalNotFound", "ApprovalPage", "ApprovalSettings",
    "ApprovalStore", "ApprovalStoreUnavailable", "DecisionRecord", "EventHook", "InvalidDecision",
    "MemoryApprovalStore", "NotAnApprover", "NotPending", "Requester", "STATES", "SelfApproval", "body_sha256",
    "create_store", "exchange_fingerprint", "fingerprint", "run_sweeper",
]
