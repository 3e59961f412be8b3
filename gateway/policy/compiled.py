"""The compiled, immutable policy: what the engine evaluates on the request path.

Built once per policy version by :mod:`gateway.policy.loader`: globs and regexes are compiled, selectors are
expanded to detector names, group lists are frozensets. Nothing here touches YAML or pydantic.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.registry import CustomDetector, Scanner


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    approver_groups: tuple[str, ...]
    """Members of any of these groups may decide (never the requester)."""
    min_approvals: int = 1
    """Distinct approvers needed before the request is released."""


@dataclass(frozen=True, slots=True)
class MaskingSpec:
    response: frozenset[str] = frozenset()
    """Detector names masked in responses (all channels) and in what is logged."""
    request: frozenset[str] = frozenset()
    """Detector names masked in prompts before forwarding."""
    style: str = "label"
    """label | keyed_hash | partial."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A request-side rule. ``None`` conditions are absent (they always hold)."""

    name: str
    action: str
    reasoning: str | None
    approval: ApprovalSpec | None
    message: str | None
    source: str
    """`file:line` where the rule is defined (for logs and `policy test` output)."""
    groups: frozenset[str] | None = None
    not_groups: frozenset[str] | None = None
    subjects: frozenset[str] | None = None
    client_ids: frozenset[str] | None = None
    routes: re.Pattern[str] | None = None
    models: re.Pattern[str] | None = None
    request_detects: frozenset[str] | None = None
    """Expanded detector names; the rule holds when any of them was found in the request."""
    request_regex: re.Pattern[str] | None = None
    request_keywords: re.Pattern[str] | None = None
    tools_present: bool | None = None
    max_tokens_over: int | None = None

    def matches(self, facts: Any, found: Mapping[str, int]) -> bool:
        """All present conditions hold for ``facts`` (a RequestFacts) given request detector ``found`` counts.

        Cheap checks run first; the order does not change the result.
        """
        groups = facts.groups
        if self.groups is not None and self.groups.isdisjoint(groups):
            return False
        if self.not_groups is not None and not self.not_groups.isdisjoint(groups):
            return False
        if self.subjects is not None and facts.sub not in self.subjects:
            return False
        if self.client_ids is not None and facts.client_id not in self.client_ids:
            return False
        if self.routes is not None and not self.routes.match(facts.path):
            return False
        if self.models is not None and (facts.model is None or not self.models.match(facts.model)):
            return False
        if self.tools_present is not None and facts.tools_present != self.tools_present:
            return False
        if self.max_tokens_over is not None and (facts.max_tokens is None or facts.max_tokens <= self.max_tokens_over):
            return False
        if self.request_detects is not None and not any(found.get(n) for n in self.request_detects):
            return False
        if self.request_regex is not None and not any(self.request_regex.search(t) for t in facts.texts):
            return False
        if self.request_keywords is not None and not any(self.request_keywords.search(t) for t in facts.texts):
            return False
        return True


@dataclass(frozen=True, slots=True)
class ResponseRule:
    """A response-side rule: fires when a listed detector or the regex matches text on one of its channels."""

    name: str
    action: str
    """terminate (cut the stream with `stream_terminated`) | flag (record it, let the stream go on)."""
    message: str | None
    channels: frozenset[str]
    detects: frozenset[str] = frozenset()
    regex: re.Pattern[str] | None = None
    groups: frozenset[str] | None = None
    not_groups: frozenset[str] | None = None
    source: str = ""

    def applies_to(self, groups: frozenset[str]) -> bool:
        if self.groups is not None and self.groups.isdisjoint(groups):
            return False
        return self.not_groups is None or self.not_groups.isdisjoint(groups)

    def fires(self, channel: str, text: str, found: Mapping[str, int]) -> bool:
        """Whether this rule fires on ``text`` of ``channel``; ``found`` is the response scanner's result for it."""
        if channel not in self.channels:
            return False
        if self.detects and any(found.get(n) for n in self.detects):
            return True
        return self.regex is not None and self.regex.search(text) is not None


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    """One immutable policy version. Swapped atomically by :class:`gateway.policy.reload.PolicyStore`."""

    rules: tuple[Rule, ...] = ()
    """Request rules in evaluation order (files by name, then top to bottom)."""
    response_rules: tuple[ResponseRule, ...] = ()
    detectors: tuple[CustomDetector, ...] = ()
    """Custom detectors defined by the files (the built-in catalog comes on top)."""
    masking: MaskingSpec = field(default_factory=MaskingSpec)
    default_reasoning: str = "mask"
    request_detectors: frozenset[str] = frozenset()
    """Detectors the request rules refer to: what ``scan`` looks for."""
    response_detectors: frozenset[str] = frozenset()
    """Detectors the response rules refer to (a response scanner must include them besides masking.response)."""
    scan: Scanner = field(default=lambda text: {}, repr=False)
    """Scanner over ``request_detectors`` built by the registry at load time."""
    files: tuple[str, ...] = ()
    version: str = ""
    """sha256 (hex, 16 chars) over file names and contents."""

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)
