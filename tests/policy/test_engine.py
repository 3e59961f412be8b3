"""Evaluation: every condition type, first match wins, default allow, one scan per request."""
from __future__ import annotations

import pytest

from gateway.policy import Policy, compile_sources, evaluate, facts_for
from gateway.principal import Principal

DETECTORS = """
detectors:
  - {name: customer_id, regex: '\\bCUST-\\d{8}\\b', label: CUSTOMER_ID}
"""


def policy_of(registry, rules_yaml: str, extra: str = "") -> Policy:
    return compile_sources([("p.yaml", DETECTORS + extra + "rules:\n" + rules_yaml)], registry)


def chat(text: str = "hello", **fields) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **fields}


def decide(policy, body=None, *, sub="alice", groups=(), client_id=None, path="/v1/chat/completions", method="POST"):
    principal = Principal(sub=sub, groups=tuple(groups), client_id=client_id)
    return evaluate(policy, facts_for(principal, method, path, chat() if body is None else body))


def one_rule(registry, when: str) -> Policy:
    return policy_of(registry, f"  - name: hit\n    action: deny\n    when: {when}\n")


CASES = [
    # (when, matching request kwargs, non-matching request kwargs)
    ("{groups: [ci-bots, ops]}", dict(groups=["dev", "ops"]), dict(groups=["dev"])),
    ("{not_groups: [privacy-team]}", dict(groups=["dev"]), dict(groups=["dev", "privacy-team"])),
    ("{subjects: [alice]}", dict(sub="alice"), dict(sub="bob")),
    ("{client_ids: [ci]}", dict(client_id="ci"), dict(client_id=None)),
    ("{routes: ['/v1/chat/*']}", dict(path="/v1/chat/completions?x=1"), dict(path="/v1/responses")),
    ("{models: ['gpt-4*', 'o3']}", dict(body=chat(model="gpt-4o-mini")), dict(body=chat(model="claude-3"))),
    ("{models: ['o3']}", dict(body=chat(model="o3")), dict(body={"messages": []})),
    ("{request_detects: [customer_id]}", dict(body=chat("see CUST-12345678")), dict(body=chat("CUST-123"))),
    ("{request_detects: ['secrets.*']}", dict(body=chat("k=AKIAIOSFODNN7EXAMPLE")), dict(body=chat("a@b.io"))),
    ("{request_regex: '(?i)password\\s*='}", dict(body=chat("PASSWORD = x")), dict(body=chat("pass"))),
    ("{request_keywords: [Project Falcon]}", dict(body=chat("the project falcon doc")), dict(body=chat("falcon"))),
    ("{tools_present: true}", dict(body=chat(tools=[{"type": "function"}])), dict(body=chat(tools=[]))),
    ("{tools_present: false}", dict(body=chat()), dict(body=chat(functions=[{"name": "f"}]))),
    ("{max_tokens_over: 1000}", dict(body=chat(max_tokens=1001)), dict(body=chat(max_tokens=1000))),
    ("{max_tokens_over: 1000}", dict(body=chat(max_completion_tokens=5000)), dict(body=chat())),
    ("{max_tokens_over: 1000}", dict(body={"input": "x", "max_output_tokens": 4096}, path="/v1/responses"),
     dict(body={"input": "x", "max_output_tokens": True}, path="/v1/responses")),
]


@pytest.mark.parametrize(("when", "yes", "no"), CASES)
def test_each_condition_matches_and_does_not(registry, when, yes, no):
    policy = one_rule(registry, when)
    hit, miss = decide(policy, **yes), decide(policy, **no)
    assert (hit.action, hit.rule) == ("deny", "hit")
    assert (miss.action, miss.rule) == ("allow", None)


def test_all_conditions_of_a_rule_must_hold(registry):
    policy = one_rule(registry, "{groups: [support], request_detects: [customer_id], not_groups: [privacy-team]}")
    assert decide(policy, chat("CUST-12345678"), groups=["support"]).action == "deny"
    assert decide(policy, chat("CUST-12345678"), groups=["support", "privacy-team"]).action == "allow"
    assert decide(policy, chat("nothing here"), groups=["support"]).action == "allow"
    assert decide(policy, chat("CUST-12345678"), groups=["dev"]).action == "allow"


def test_first_match_wins_top_to_bottom(registry):
    policy = policy_of(registry, """
  - name: ci
    when: {groups: [ci-bots]}
    reasoning: drop
  - name: secrets
    when: {request_detects: ["secrets.*"]}
    action: deny
    message: no credentials
  - name: catch-all
    reasoning: pass
""")
    ci = decide(policy, chat("AKIAIOSFODNN7EXAMPLE"), groups=["ci-bots"])
    assert (ci.action, ci.rule, ci.reasoning) == ("allow", "ci", "drop")  # the deny below is never consulted
    denied = decide(policy, chat("AKIAIOSFODNN7EXAMPLE"))
    assert (denied.action, denied.rule, denied.message) == ("deny", "secrets", "no credentials")
    assert denied.detected == {"secrets.aws_access_key": 1}
    rest = decide(policy, chat("hi"))
    assert (rest.action, rest.rule, rest.reasoning) == ("allow", "catch-all", "pass")


def test_default_allow_uses_the_default_reasoning(registry):
    policy = policy_of(registry, "  - name: only-ci\n    when: {groups: [ci]}\n", "defaults: {reasoning: drop}\n")
    d = decide(policy)
    assert (d.action, d.rule, d.reasoning, d.approval, d.message) == ("allow", None, "drop", None, None)
    assert d.policy_version == policy.version
    plain = compile_sources([("p.yaml", "")], registry)
    assert decide(plain).reasoning == "mask"


def test_rule_without_reasoning_inherits_the_default(registry):
    policy = policy_of(registry, "  - name: d\n    action: deny\n", "defaults: {reasoning: pass}\n")
    assert decide(policy).reasoning == "pass"


def test_require_approval_carries_the_spec(registry):
    policy = policy_of(registry, """
  - name: needs-approval
    when: {request_detects: [customer_id]}
    action: require_approval
    approval: {approver_groups: [sre-approvers, leads], min_approvals: 2}
""")
    d = decide(policy, chat("CUST-12345678 and CUST-87654321"))
    assert d.action == "require_approval" and d.rule == "needs-approval"
    assert d.approval.approver_groups == ("sre-approvers", "leads") and d.approval.min_approvals == 2
    assert d.detected == {"customer_id": 2}


def test_request_is_scanned_once_for_all_rules(registry):
    policy = policy_of(registry, """
  - name: a
    when: {request_detects: [customer_id], groups: [x]}
  - name: b
    when: {request_detects: ["secrets.*"], groups: [y]}
  - name: c
    when: {request_detects: ["pii.*"]}
""")
    registry.scanned.clear()
    decide(policy, {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]})
    assert registry.scanned == ["s", "u"]  # each text once, not once per rule


def test_no_scan_when_no_rule_uses_detectors(registry):
    policy = policy_of(registry, "  - name: a\n    when: {groups: [x]}\n")
    registry.scanned.clear()
    decide(policy, chat("CUST-12345678"))
    assert registry.scanned == [] and policy.request_detectors == frozenset()


def test_precomputed_findings_are_used_instead_of_scanning(registry):
    from dataclasses import replace

    policy = one_rule(registry, "{request_detects: [customer_id]}")
    facts = replace(facts_for(Principal("a"), "POST", "/v1/chat/completions", chat("x")), found={"customer_id": 1})
    registry.scanned.clear()
    assert evaluate(policy, facts).action == "deny" and registry.scanned == []


def test_texts_cover_history_tool_args_and_dialects(registry):
    policy = one_rule(registry, "{request_detects: [customer_id]}")
    history = {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"function": {"name": "f", "arguments": "{\"id\": \"CUST-12345678\"}"}}]}]}
    assert decide(policy, history).action == "deny"
    anthropic = {"model": "m", "system": "CUST-12345678", "messages": []}
    assert decide(policy, anthropic, path="/v1/messages").action == "deny"
    assert decide(policy, b'{"input": "CUST-12345678"}', path="/v1/responses").action == "deny"


def test_unknown_dialect_inspects_the_whole_body(registry):
    policy = one_rule(registry, "{request_detects: [customer_id]}")
    assert decide(policy, b'{"prompt": "CUST-12345678"}', path="/v1/completions").action == "deny"
    assert decide(policy, b"not json CUST-12345678", path="/custom").action == "deny"
    assert decide(policy, b"", path="/v1/models", method="GET").action == "allow"
    # a known dialect with a body that is not a JSON object is not skipped either
    assert decide(policy, b'{"messages": [CUST-12345678', path="/v1/chat/completions").action == "deny"


def test_response_rules_attached_per_caller(registry):
    policy = compile_sources([("p.yaml", """
response_rules:
  - {name: everyone, when: {detects: ["secrets.*"]}, action: terminate}
  - {name: not-privacy, when: {regex: CUST, not_groups: [privacy-team]}}
  - {name: only-ci, when: {regex: x, groups: [ci-bots]}}
""")], registry)
    assert [r.name for r in decide(policy).response_rules] == ["everyone", "not-privacy"]
    assert [r.name for r in decide(policy, groups=["privacy-team"]).response_rules] == ["everyone"]
    assert [r.name for r in decide(policy, groups=["ci-bots"]).response_rules] == ["everyone", "not-privacy", "only-ci"]


def test_missing_principal_and_non_object_body(registry):
    policy = one_rule(registry, "{not_groups: [x], models: ['*']}")
    assert evaluate(policy, facts_for(None, "POST", "/v1/chat/completions", b"[1, 2]")).action == "allow"
