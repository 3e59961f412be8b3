"""Request policy evaluation.

Evaluation order, precisely:
1. The request's texts (every message/part/instruction text, reasoning handed back and tool-call arguments, as
   :func:`gateway.dialects.requests.request_texts` finds them; the whole body as one text for paths in no known
   dialect and for bodies that are not a JSON object) are scanned **once** for the detectors the request rules
   refer to (``Policy.request_detectors``).
2. Request rules are tried in order: files sorted by file name, then top to bottom within a file.
   A rule matches when every condition in its ``when`` holds (an empty ``when`` matches every request).
3. The **first** matching rule decides: its ``action`` (allow | deny | require_approval), its ``reasoning`` (or
   ``defaults.reasoning`` when the rule sets none), its ``approval`` spec and ``message``. Later rules are not
   consulted, even for reasoning: a rule that denies nothing but sets ``reasoning: drop`` still ends evaluation.
4. No matching rule: action ``allow``, ``rule`` None, reasoning ``defaults.reasoning`` (``mask`` unless set).
5. Response rules do not take part in the decision; the ones applicable to the caller's groups are attached to
   the decision for the response side (see :class:`gateway.policy.compiled.ResponseRule`).

Everything here is precompiled by the loader: evaluation does set look-ups, a few compiled-regex matches and
at most one scan per request.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.dialects import OPAQUE, dialect_name_for
from gateway.dialects.requests import request_texts
from gateway.policy.compiled import ApprovalSpec, Policy, ResponseRule
from gateway.principal import Principal

_MAX_TOKEN_FIELDS = ("max_tokens", "max_output_tokens", "max_completion_tokens")
_EMPTY: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a policy may look at for one request. Built once per request (see :func:`facts_for`)."""

    sub: str
    """Subject of the caller."""
    groups: frozenset[str] = frozenset()
    """The caller's groups."""
    client_id: str | None = None
    """OAuth client id, if the token has one."""
    method: str = "POST"
    path: str = "/"
    """Request path without the query string (matched by `routes` globs)."""
    body: Any = None
    """Parsed JSON body, or None when there was none or it was not JSON."""
    texts: tuple[str, ...] = ()
    """The request's texts (prompt, history, tool arguments) scanned by detectors and `request_regex`."""
    model: str | None = None
    """The body's `model` field when it is a string."""
    tools_present: bool = False
    """The body declares tools (`tools` or legacy `functions`, non-empty)."""
    max_tokens: int | None = None
    """The body's max_tokens / max_output_tokens / max_completion_tokens (the largest given)."""
    found: Mapping[str, int] | None = None
    """Detector counts already computed by the caller; None lets :func:`evaluate` scan ``texts``."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    """allow | deny | require_approval."""
    rule: str | None
    """Name of the deciding rule; None for the default allow."""
    reasoning: str
    """pass | mask | drop: what the client may see of the reasoning channel."""
    approval: ApprovalSpec | None = None
    """Who must approve (action require_approval only)."""
    message: str | None = None
    """The rule's message for the client (deny)."""
    detected: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    """Request detector findings: name -> count (only detectors the request rules refer to, non-zero)."""
    response_rules: tuple[ResponseRule, ...] = ()
    """Response rules applicable to this caller, in file order."""
    policy_version: str = ""


def facts_for(principal: Principal | None, method: str, path: str, body: bytes | str | Any | None) -> RequestFacts:
    """Facts from a request as received. ``body``: raw bytes/str (parsed here) or already parsed JSON."""
    path = path.split("?", 1)[0]
    raw = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    parsed = raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = None
    if dialect_name_for(path) != OPAQUE and isinstance(parsed, dict):
        texts = tuple(d.text for d in request_texts(path, parsed))
    else:
        # No field-level understanding (unknown dialect, or a body that is not a JSON object): inspect the whole
        # body as one text rather than nothing.
        text = raw if isinstance(raw, str) else (json.dumps(parsed, ensure_ascii=False) if parsed is not None else "")
        texts = (text,) if text else ()
    obj = parsed if isinstance(parsed, dict) else {}
    model = obj.get("model")
    caps = [v for k in _MAX_TOKEN_FIELDS if isinstance(v := obj.get(k), int) and not isinstance(v, bool)]
    tools = obj.get("tools") or obj.get("functions")
    return RequestFacts(
        sub=principal.sub if principal else "",
        groups=frozenset(principal.groups) if principal else frozenset(),
        client_id=principal.client_id if principal else None,
        method=method.upper(),
        path=path,
        body=parsed,
        texts=texts,
        model=model if isinstance(model, str) else None,
        tools_present=isinstance(tools, list) and bool(tools),
        max_tokens=max(caps) if caps else None,
    )


def scan(policy: Policy, texts: tuple[str, ...]) -> Mapping[str, int]:
    """Counts per detector over all texts, restricted to the detectors the request rules use."""
    if not policy.request_detectors or not texts:
        return _EMPTY
    counts: dict[str, int] = {}
    for text in texts:
        for name, n in policy.scan(text).items():
            if n and name in policy.request_detectors:
                counts[name] = counts.get(name, 0) + n
    return MappingProxyType(counts)


def evaluate(policy: Policy, facts: RequestFacts) -> Decision:
    """First matching rule decides; no match -> allow with the default reasoning visibility."""
    found = facts.found if facts.found is not None else scan(policy, facts.texts)
    responses = tuple(r for r in policy.response_rules if r.applies_to(facts.groups))
    for rule in policy.rules:
        if rule.matches(facts, found):
            return Decision(
                action=rule.action,
                rule=rule.name,
                reasoning=rule.reasoning or policy.default_reasoning,
                approval=rule.approval,
                message=rule.message,
                detected=found,
                response_rules=responses,
                policy_version=policy.version,
            )
    return Decision("allow", None, policy.default_reasoning, detected=found, response_rules=responses,
                    policy_version=policy.version)
