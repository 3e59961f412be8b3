"""The policy filter: reads the request body, evaluates the current policy, and allows, denies or parks it.

Runs after auth (it needs the principal). The body is read here, whole and within the size limit, because rules
look at the prompt; a JSON body for a known API must parse, and a JSON object with a duplicated key is refused
(the policy would see the last value while an upstream parser might use the first). When the policy masks
prompts, the forwarded body is re-serialised with the masked texts.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from gateway.approvals.fingerprint import BODY_SHA256 as APPROVAL_BODY_SHA256, body_sha256
from gateway.dialects import OPAQUE, dialect_name_for
from gateway.dialects.requests import request_texts, set_request_text
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.base import CONTINUE, Filter, Respond, Verdict
from gateway.policy.compiled import Policy
from gateway.policy.engine import Decision, evaluate, facts_for
from gateway.policy.reload import PolicyStore

TextMasker = Callable[[Policy, str, frozenset[str]], tuple[str, Mapping[str, int]]]
"""Masks one text for the given detector names under a policy; returns the masked text and counts per detector."""

DECISION = "policy_decision"
"""``ex.annotations`` key holding the :class:`Decision` for later filters (masking, approval, audit)."""
REQUEST_JSON = "request_json"
"""``ex.annotations`` key: the parsed JSON body as forwarded (after prompt masking), so later filters need not
parse it again."""
POLICY = "policy"
"""``ex.annotations`` key holding the :class:`Policy` version that decided the exchange."""


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def parse_request_json(ex: Exchange, body: bytes) -> Any:
    """The parsed body of a known API request (None for other paths or empty bodies); 400 when it is broken."""
    if not body or dialect_name_for(ex.path) == OPAQUE:
        return None
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        raise GatewayError(400, "invalid_json", f"The JSON body repeats the key {str(dup)!r}; send each key once.")
    except UnicodeDecodeError:
        raise GatewayError(400, "invalid_json", "The request body is not valid UTF-8 JSON.") from None
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise GatewayError(400, "invalid_json", f"The request body is not valid JSON{where}.") from None


class PolicyFilter(Filter):
    name = "policy"

    def __init__(self, store: PolicyStore, mask_text: TextMasker | None = None, *,
                 approvals_enabled: bool = False) -> None:
        self.store = store
        self.mask_text = mask_text
        self.approvals_enabled = approvals_enabled
        """True when an approval gate follows in the chain: require_approval continues to it (else 503)."""

    async def on_request(self, ex: Exchange) -> Verdict:
        policy = self.store.policy  # one version for the whole exchange, even if a reload lands meanwhile
        body = await ex.read_body()
        parsed = parse_request_json(ex, body)
        decision = evaluate(policy, facts_for(ex.principal, ex.method, ex.path, parsed if parsed is not None else body))
        ex.annotations[DECISION] = decision
        ex.annotations[POLICY] = policy
        ex.annotations["policy_version"] = decision.policy_version
        ex.rule = decision.rule
        if decision.action == "deny":
            ex.decision = "deny"
            message = decision.message or f"The gateway's policy ({decision.rule}) does not allow this request."
            return Respond(GatewayError(403, "policy_denied", message, extra={"rule": decision.rule}))
        if decision.action == "require_approval":
            ex.decision = "approval_required"
            if not self.approvals_enabled:
                return self.on_approval_required(ex, decision)
            # The gate binds the approval to the body as received, not to the masked copy forwarded below.
            ex.annotations[APPROVAL_BODY_SHA256] = body_sha256(body)
        if policy.masking.request and isinstance(parsed, dict):
            self._mask_prompt(ex, policy, parsed)
        if parsed is not None:
            ex.annotations[REQUEST_JSON] = parsed
        return CONTINUE

    def on_approval_required(self, ex: Exchange, decision: Decision) -> Verdict:
        """No approval gate runs in this chain: refuse rather than forward an unapproved request (fail closed)."""
        return Respond(
            GatewayError(
                503,
                "approval_unavailable",
                f"This request needs approval (rule {decision.rule}) and no approval service is configured.",
            )
        )

    def _mask_prompt(self, ex: Exchange, policy: Policy, body: dict) -> None:
        if self.mask_text is None:
            raise GatewayError(500, "internal_error", "Prompt masking is configured but no masker is available.")
        counts: dict[str, int] = {}
        changed = False
        for delta in request_texts(ex.path, body):
            masked, found = self.mask_text(policy, delta.text, policy.masking.request)
            for name, n in found.items():
                counts[name] = counts.get(name, 0) + n
            if masked != delta.text:
                set_request_text(body, delta, masked)
                changed = True
        if changed:
            ex.body = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        ex.annotations["request_masking_counts"] = counts
