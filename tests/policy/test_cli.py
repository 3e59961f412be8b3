"""`gateway policy check` / `gateway policy test` as functions: output and exit codes."""
from __future__ import annotations

import io
from pathlib import Path

from gateway.policy.cli import check, test
from tests.policy.fakes import fake_masker

POLICY = """
detectors:
  - {name: customer_id, regex: '\\bCUST-\\d{8}\\b', label: CUSTOMER_ID}
rules:
  - name: ci
    when: {groups: [ci-bots]}
    reasoning: drop
  - name: customers
    when: {request_detects: [customer_id]}
    action: require_approval
    approval: {approver_groups: [sre-approvers]}
masking: {response: ["pii.*", customer_id]}
"""


def run(fn, *args, **kw) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = fn(*args, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def test_check_ok(write, registry):
    write("00.yaml", POLICY)
    write("10.yaml", "rules:\n  - name: last\n")
    assert run(check, write.dir, registry) == (0, "OK: 2 files, 3 rules, 1 detectors\n", "")


def test_check_errors_with_file_and_line(write, registry):
    p = write("00.yaml", "rules:\n  - name: r\n    when: {groupz: [x]}\n")
    code, out, err = run(check, write.dir, registry)
    assert code == 1 and out == ""
    assert err.splitlines()[0].startswith(f"{p}:3: rules[0].when: unknown key 'groupz'")
    assert err.splitlines()[-1] == "1 problem(s) found"


def cases(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cases.yaml"
    p.write_text(text)
    return p


CASES = """
- name: ci drops reasoning
  request: {path: /v1/chat/completions, body: {model: m, messages: [{role: user, content: hi}]}}
  identity: {sub: runner, groups: [ci-bots]}
  expect: {action: allow, rule: ci, reasoning: drop}
- name: customer needs approval
  request: {method: POST, path: /v1/responses, headers: {x-a: b}, body: {input: "CUST-12345678"}}
  identity: {sub: carol, groups: [support], client_id: web}
  expect: {action: require_approval, rule: customers, approver_groups: [sre-approvers]}
- name: default allow
  request: {path: /v1/chat/completions, body: '{"messages": [{"role": "user", "content": "hi"}]}'}
  identity: {sub: a}
  expect: {action: allow, rule: null, reasoning: mask}
"""


def test_test_all_pass(write, registry, tmp_path):
    write("00.yaml", POLICY)
    code, out, _ = run(test, cases(tmp_path, CASES), write.dir, registry)
    assert code == 0
    assert out.splitlines() == [
        "PASS ci drops reasoning", "PASS customer needs approval", "PASS default allow", "3/3 passed"]


def test_test_failure_exits_1_and_says_what_differs(write, registry, tmp_path):
    write("00.yaml", POLICY)
    bad = CASES.replace("expect: {action: allow, rule: ci, reasoning: drop}",
                        "expect: {action: deny, rule: ci, reasoning: pass}")
    bad = bad.replace("approver_groups: [sre-approvers]", "approver_groups: [leads]")
    code, out, _ = run(test, cases(tmp_path, bad), write.dir, registry)
    assert code == 1
    assert out.splitlines() == [
        "FAIL ci drops reasoning: expected action=deny got allow; expected reasoning=pass got drop",
        "FAIL customer needs approval: expected approver_groups=['leads'] got ['sre-approvers']",
        "PASS default allow",
        "1/3 passed",
    ]


def test_expected_rule_none_vs_a_rule(write, registry, tmp_path):
    write("00.yaml", POLICY)
    text = CASES.replace("rule: null, reasoning: mask", "rule: ci")
    code, out, _ = run(test, cases(tmp_path, text), write.dir, registry)
    assert code == 1 and "FAIL default allow: expected rule=ci got (none)" in out


MASKED = """
- name: masks email and customer id
  request: {path: /v1/chat/completions, body: {messages: []}}
  identity: {sub: a}
  expect:
    action: allow
    masked:
      - {text: "mail jo@example.com re CUST-12345678", expected: "mail [EMAIL] re [CUSTOMER_ID]"}
      - {text: "CUST-12345678", expected: "CUST-12345678", side: request}
"""


def test_masked_with_a_masker(write, registry, tmp_path):
    write("00.yaml", POLICY)
    code, out, _ = run(test, cases(tmp_path, MASKED), write.dir, registry, masker=fake_masker(registry))
    assert (code, out) == (0, "PASS masks email and customer id\n1/1 passed\n")
    wrong = MASKED.replace('"mail [EMAIL] re [CUSTOMER_ID]"', '"mail [EMAIL] re CUST-12345678"')
    code, out, _ = run(test, cases(tmp_path, wrong), write.dir, registry, masker=fake_masker(registry))
    assert code == 1
    assert out.splitlines()[0] == ("FAIL masks email and customer id: expected masked response "
                                   "'mail [EMAIL] re CUST-12345678' got 'mail [EMAIL] re [CUSTOMER_ID]'")


def test_masked_without_a_masker_is_skipped_with_a_message(write, registry, tmp_path):
    write("00.yaml", POLICY)
    code, out, _ = run(test, cases(tmp_path, MASKED), write.dir, registry)
    assert code == 0
    assert out.splitlines() == [
        "PASS masks email and customer id (masked: skipped, no masker wired)",
        "1/1 passed, 1 masked check(s) skipped",
    ]


def test_invalid_cases_file_names_file_and_line(write, registry, tmp_path):
    write("00.yaml", POLICY)
    p = cases(tmp_path, CASES.replace("expect: {action: allow, rule: ci", "expect: {action: permit, rule: ci"))
    code, out, err = run(test, p, write.dir, registry)
    assert code == 1 and out == ""
    assert err.startswith(f"{p}:5: [0].expect.action: Input should be 'allow', 'deny' or 'require_approval'")


def test_invalid_policy_or_missing_cases(write, registry, tmp_path):
    p = write("00.yaml", "rules: 3\n")
    code, _, err = run(test, cases(tmp_path, CASES), write.dir, registry)
    assert code == 1 and err.startswith(f"{p}:1: rules: Input should be a valid list")
    code, _, err = run(test, tmp_path / "missing.yaml", write.dir.parent / "nope", registry)
    assert code == 1 and "no such file or directory" in err


def test_empty_cases_file_fails(write, registry, tmp_path):
    write("00.yaml", POLICY)
    code, out, _ = run(test, cases(tmp_path, "[]\n"), write.dir, registry)
    assert code == 1 and out == "0/0 passed\n"
