"""The policy file shape (pydantic v2, unknown keys rejected). One file validates to one :class:`PolicyFile`.

Checks that need every file (unique rule names, selectors naming known detectors, style conflicts) happen when
files are merged, in :mod:`gateway.policy.loader`.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.policy.registry import BUILTIN_PREFIXES

Action = Literal["allow", "deny", "require_approval"]
Reasoning = Literal["pass", "mask", "drop"]
Style = Literal["label", "keyed_hash", "partial"]
Channel = Literal["content", "reasoning", "tool_args"]
ResponseAction = Literal["terminate", "flag"]

_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_REQUEST_HINTS = {
    "detects": "request rules use request_detects; `detects` belongs to response_rules",
    "regex": "request rules use request_regex; `regex` belongs to response_rules",
    "channels": "`channels` belongs to response_rules: responses are checked there",
    "request_detect": "did you mean request_detects?",
    "group": "did you mean groups?",
    "route": "did you mean routes?",
}


def hint(loc: tuple) -> str | None:
    """A friendlier word for an unknown key at ``loc`` (a pydantic error location), if there is one."""
    if len(loc) == 4 and loc[0] == "rules" and loc[2] == "when":
        return _REQUEST_HINTS.get(loc[3])
    if len(loc) == 4 and loc[0] == "response_rules" and loc[2] == "when":
        return "response rules take detects, regex, channels, groups, not_groups"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_regex(v: str | None) -> str | None:
    if v is not None:
        if not v:
            raise ValueError("an empty regex matches everything; remove the condition instead")
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex {v!r}: {exc}") from None
    return v


class DetectorDef(_Strict):
    name: str = Field(pattern=_NAME)
    label: str = Field(min_length=1)
    regex: str | None = None
    keywords: list[str] | None = None
    case_insensitive: bool | None = None
    """Keywords only; default true."""

    _regex = field_validator("regex")(_check_regex)

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, v: str) -> str:
        if v.startswith(BUILTIN_PREFIXES):
            raise ValueError(f"{v!r}: names starting with {' or '.join(BUILTIN_PREFIXES)} are reserved for built-ins")
        return v

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(not k.strip() for k in v)):
            raise ValueError("keywords must be a non-empty list of non-empty strings")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> DetectorDef:
        if (self.regex is None) == (self.keywords is None):
            raise ValueError(f"detector {self.name!r} needs exactly one of `regex` or `keywords`")
        if self.case_insensitive is not None and self.keywords is None:
            raise ValueError("case_insensitive applies to keyword detectors; use (?i) in a regex")
        return self


class When(_Strict):
    """Request-side conditions; every condition given must hold (an empty `when` matches every request)."""

    groups: list[str] | None = None
    not_groups: list[str] | None = None
    subjects: list[str] | None = None
    client_ids: list[str] | None = None
    routes: list[str] | None = None
    models: list[str] | None = None
    request_detects: list[str] | None = None
    request_regex: str | None = None
    request_keywords: list[str] | None = None
    tools_present: bool | None = None
    max_tokens_over: int | None = Field(None, ge=0)

    _regex = field_validator("request_regex")(_check_regex)

    @field_validator("groups", "subjects", "client_ids", "routes", "models", "request_detects", "request_keywords")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("an empty list never matches; remove the condition or list at least one value")
        return v


class ApprovalDef(_Strict):
    approver_groups: list[str]
    min_approvals: int = Field(1, ge=1)

    @field_validator("approver_groups")
    @classmethod
    def _named(cls, v: list[str]) -> list[str]:
        if not v or any(not g.strip() for g in v):
            raise ValueError("list at least one approver group (and no empty names): nobody could approve")
        return v


class RuleDef(_Strict):
    name: str = Field(pattern=_NAME)
    description: str | None = None
    when: When = Field(default_factory=When)
    action: Action = "allow"
    reasoning: Reasoning | None = None
    """Reasoning visibility for requests this rule decides; unset -> `defaults.reasoning`."""
    approval: ApprovalDef | None = None
    message: str | None = None
    """Shown to the client when the request is denied."""

    @model_validator(mode="after")
    def _approval_matches_action(self) -> RuleDef:
        if self.action == "require_approval" and self.approval is None:
            raise ValueError(f"rule {self.name!r}: action require_approval needs an `approval` block")
        if self.action != "require_approval" and self.approval is not None:
            raise ValueError(f"rule {self.name!r}: `approval` only applies to action require_approval")
        return self


class ResponseWhen(_Strict):
    """Response-side triggers: the rule fires when any listed detector or the regex matches on a listed channel."""

    detects: list[str] | None = None
    regex: str | None = None
    channels: list[Channel] = Field(default_factory=lambda: ["content", "reasoning", "tool_args"], min_length=1)
    groups: list[str] | None = None
    """Only for callers in any of these groups (scoping, checked once per request)."""
    not_groups: list[str] | None = None
    """Not for callers in any of these groups."""

    _regex = field_validator("regex")(_check_regex)

    @model_validator(mode="after")
    def _has_trigger(self) -> ResponseWhen:
        if not self.detects and self.regex is None:
            raise ValueError("a response rule needs `detects` and/or `regex`")
        return self


class ResponseRuleDef(_Strict):
    name: str = Field(pattern=_NAME)
    description: str | None = None
    when: ResponseWhen
    action: ResponseAction = "flag"
    message: str | None = None
    """Sent in the `stream_terminated` error event when the rule terminates a stream."""


class MaskingDef(_Strict):
    response: list[str] = Field(default_factory=list)
    """Selectors of detectors masked in responses (all channels) and in everything logged."""
    request: list[str] = Field(default_factory=list)
    """Selectors of detectors masked in prompts before they are forwarded."""
    style: Style | None = None
    """label (default) | keyed_hash | partial. Files may repeat the same value; different values are an error."""


class DefaultsDef(_Strict):
    reasoning: Reasoning | None = None
    """Reasoning visibility when the deciding rule does not set one, and when no rule matches (default: mask)."""


class PolicyFile(_Strict):
    detectors: list[DetectorDef] = Field(default_factory=list)
    rules: list[RuleDef] = Field(default_factory=list)
    response_rules: list[ResponseRuleDef] = Field(default_factory=list)
    masking: MaskingDef = Field(default_factory=MaskingDef)
    defaults: DefaultsDef = Field(default_factory=DefaultsDef)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: object) -> object:
        if data is None:
            return {}
        return data
