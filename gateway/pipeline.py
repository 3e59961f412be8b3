"""The policy part of the filter chain: policy → approval gate → audit recorder → masking.

Request hooks run in that order (the approval gate parks what the policy says needs approval; the audit filter
journals the request only once it is about to be forwarded); response hooks in reverse (masking first; the
recorder takes the bytes written to the client after every filter). All masking here is done by the policy
version that decided the exchange.
"""
from __future__ import annotations

from gateway.approvals import ApprovalStore
from gateway.audit.service import AuditLog
from gateway.catalog import ExchangeMaskers, PolicyMaskers
from gateway.config import Settings
from gateway.exchange import Exchange
from gateway.filters.approval import ApprovalGate
from gateway.filters.audit import AuditFilter, mask_body
from gateway.filters.base import Filter
from gateway.filters.masking import MaskingFilter
from gateway.filters.policy import POLICY, REQUEST_JSON, PolicyFilter
from gateway.policy.compiled import Policy
from gateway.policy.reload import PolicyStore

EXCERPT_CHARS = 2000


def policy_filters(settings: Settings, store: PolicyStore, audit: AuditLog | None,
                   approvals: ApprovalStore) -> list[Filter]:
    """Raises ValueError when the policy's masking cannot be built (e.g. keyed_hash without masking.hmac_key)."""
    key = settings.masking.hmac_key
    maskers = PolicyMaskers(
        hmac_key=key.get_secret_value().encode() if key else None,
        max_hold_chars=settings.masking.max_hold_chars,
        max_hold_s=settings.masking.max_hold_s,
    )
    maskers.check(store.policy)

    def mask_text(policy: Policy, text: str, names: frozenset[str]):
        return maskers.masker(policy, names).mask_text(text)

    def engine_for(ex: Exchange):
        policy = ex.annotations[POLICY]
        return ExchangeMaskers(maskers, policy), policy.masking.response

    def excerpt_for(ex: Exchange) -> str:
        """What approvers see: the request body masked as the audit log masks it, cut short."""
        if ex.body is None:
            return ""
        text, _ = mask_body(ex.body, lambda t: mask_for_log(store, maskers, ex, t), ex.annotations.get(REQUEST_JSON))
        return text[:EXCERPT_CHARS]

    filters: list[Filter] = [PolicyFilter(store, mask_text, approvals_enabled=True),
                             ApprovalGate(approvals, settings.approvals, excerpt_for)]
    if audit is not None:
        filters.append(audit_filter(store, maskers, audit))
    return filters + [MaskingFilter(engine_for)]


def audit_filter(store: PolicyStore, maskers: PolicyMaskers, audit: AuditLog) -> AuditFilter:
    """What is logged is masked with the policy's response and request detectors (the contract: masking
    "always applies to what is logged"), by the policy version that decided the exchange."""

    def log_stream(ex: Exchange):
        policy = policy_of(store, ex)
        return maskers.masker(policy, logged_names(policy)).stream(
            max_hold_chars=maskers.max_hold_chars, max_hold_s=maskers.max_hold_s)

    return AuditFilter(audit, lambda ex, text: mask_for_log(store, maskers, ex, text), log_stream)


def logged_names(policy: Policy) -> frozenset[str]:
    return frozenset(policy.masking.response) | frozenset(policy.masking.request)


def policy_of(store: PolicyStore, ex: Exchange) -> Policy:
    return ex.annotations.get(POLICY) or store.policy  # refused before the policy filter ran: the current one


def mask_for_log(store: PolicyStore, maskers: PolicyMaskers, ex: Exchange, text: str):
    policy = policy_of(store, ex)
    return maskers.masker(policy, logged_names(policy)).mask_text(text)
