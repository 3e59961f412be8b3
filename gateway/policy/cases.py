"""Policy test cases (`gateway policy test`): a request and an identity, and what the policy must decide.

```yaml
- name: ci bot gets no reasoning
  request: {method: POST, path: /v1/chat/completions, body: {model: m, messages: [{role: user, content: hi}]}}
  identity: {sub: ci-runner, groups: [ci-bots], client_id: ci}
  expect:
    action: allow                 # allow | deny | require_approval
    rule: ci-gets-no-reasoning    # null = no rule matched (default allow); omit to not check
    reasoning: drop
    approver_groups: [sre-approvers]
    masked: {text: "mail bob@example.com", expected: "mail [EMAIL]", side: response}   # or a list of these
```
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from gateway.policy.compiled import Policy
from gateway.policy.engine import Decision, evaluate, facts_for
from gateway.policy.model import Action, Reasoning
from gateway.principal import Principal

Masker = Callable[[Policy, str, str], str]
"""(policy, text, side) -> the text as the masker would emit it; side is `response` or `request`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseRequest(_Strict):
    method: str = "POST"
    path: str = Field(pattern=r"^/")
    headers: dict[str, str] = Field(default_factory=dict)
    """Accepted for realism; no policy condition reads headers today."""
    body: Any = None
    """A mapping (the JSON body) or a raw string."""


class Identity(_Strict):
    sub: str
    groups: list[str] = Field(default_factory=list)
    client_id: str | None = None


class MaskedExpect(_Strict):
    text: str
    expected: str
    side: Literal["response", "request"] = "response"


class Expect(_Strict):
    action: Action
    rule: str | None = None
    reasoning: Reasoning | None = None
    approver_groups: list[str] | None = None
    masked: MaskedExpect | list[MaskedExpect] | None = None


class Case(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    request: CaseRequest
    identity: Identity
    expect: Expect


class CaseFile(RootModel[list[Case]]):
    pass


def decide(policy: Policy, case: Case) -> Decision:
    ident = case.identity
    principal = Principal(sub=ident.sub, groups=tuple(ident.groups), client_id=ident.client_id)
    return evaluate(policy, facts_for(principal, case.request.method, case.request.path, case.request.body))


def run_case(policy: Policy, case: Case, masker: Masker | None) -> tuple[list[str], bool]:
    """(mismatches as `expected X got Y`, whether a masked check was skipped for want of a masker)."""
    got = decide(policy, case)
    exp = case.expect
    diffs = []
    if got.action != exp.action:
        diffs.append(f"expected action={exp.action} got {got.action}")
    if "rule" in exp.model_fields_set and got.rule != exp.rule:
        diffs.append(f"expected rule={exp.rule or '(none)'} got {got.rule or '(none)'}")
    if exp.reasoning is not None and got.reasoning != exp.reasoning:
        diffs.append(f"expected reasoning={exp.reasoning} got {got.reasoning}")
    if exp.approver_groups is not None:
        have = list(got.approval.approver_groups) if got.approval else []
        if sorted(have) != sorted(exp.approver_groups):
            diffs.append(f"expected approver_groups={exp.approver_groups} got {have}")
    masks = [exp.masked] if isinstance(exp.masked, MaskedExpect) else list(exp.masked or [])
    if masks and masker is None:
        return diffs, True
    for m in masks:
        out = masker(policy, m.text, m.side)  # type: ignore[misc]
        if out != m.expected:
            diffs.append(f"expected masked {m.side} {m.expected!r} got {out!r}")
    return diffs, False
