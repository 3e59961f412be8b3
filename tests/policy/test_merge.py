"""Files merge in file-name order; lists concatenate, masking selectors union, single settings must agree."""
from __future__ import annotations

from gateway.policy import compile_sources, load_policy


def test_files_merge_in_name_order_not_creation_order(write, registry):
    write("20-late.yaml", "rules:\n  - name: late\n")
    write("03-early.yaml", "rules:\n  - name: early-1\n  - name: early-2\n")
    write("10-mid.yml", "rules:\n  - name: mid\n")
    (write.dir / "notes.txt").write_text("rules: [oops")  # not a policy file
    policy = load_policy(write.dir, registry)
    assert [r.name for r in policy.rules] == ["early-1", "early-2", "mid", "late"]
    assert [f.rsplit("/", 1)[-1] for f in policy.files] == ["03-early.yaml", "10-mid.yml", "20-late.yaml"]
    assert policy.rules[1].source == f"{write.dir / '03-early.yaml'}:3"


def test_detectors_from_an_earlier_file_are_usable_later(write, registry):
    write("00-d.yaml", "detectors:\n  - {name: customer_id, regex: 'CUST-\\d{8}', label: CUSTOMER_ID}\n")
    write("10-d.yaml", "detectors:\n  - {name: falcon, keywords: [Falcon], label: DOC, case_insensitive: false}\n")
    write("20-r.yaml", "rules:\n  - name: r\n    when: {request_detects: [customer_id, falcon]}\n")
    policy = load_policy(write.dir, registry)
    assert [d.name for d in policy.detectors] == ["customer_id", "falcon"]
    assert policy.detectors[0].regex == "CUST-\\d{8}" and policy.detectors[1].keywords == ("Falcon",)
    assert policy.detectors[0].case_insensitive and not policy.detectors[1].case_insensitive
    assert policy.request_detectors == {"customer_id", "falcon"}


def test_masking_lists_union_and_style_defaults(write, registry):
    write("00.yaml", "masking: {response: [\"pii.*\"]}\n")
    write("10.yaml", "masking: {response: [pii.email, \"secrets.*\"], request: [secrets.aws_access_key]}\n")
    policy = load_policy(write.dir, registry)
    assert policy.masking.response == {"pii.email", "pii.phone", "secrets.aws_access_key", "secrets.github_token"}
    assert policy.masking.request == {"secrets.aws_access_key"}
    assert policy.masking.style == "label" and policy.default_reasoning == "mask"


def test_style_and_default_reasoning_set_once(write, registry):
    write("00.yaml", "masking: {style: keyed_hash}\n")
    write("10.yaml", "defaults: {reasoning: pass}\nmasking: {style: keyed_hash}\n")
    policy = load_policy(write.dir, registry)
    assert policy.masking.style == "keyed_hash" and policy.default_reasoning == "pass"


def test_empty_file_is_an_empty_policy(write, registry):
    write("00.yaml", "# nothing yet\n")
    policy = load_policy(write.dir, registry)
    assert policy.rules == () and policy.files == (str(write.dir / "00.yaml"),)


def test_version_changes_with_content_and_scanner_built_once(registry):
    a = compile_sources([("p.yaml", "rules: [{name: a}]\n")], registry)
    b = compile_sources([("p.yaml", "rules: [{name: b}]\n")], registry)
    again = compile_sources([("p.yaml", "rules: [{name: a}]\n")], registry)
    assert a.version != b.version and a.version == again.version and len(a.version) == 16
    assert registry.scanners_built == 3


def test_response_rules_parse(write, registry):
    write("00.yaml", """
        detectors:
          - {name: customer_id, regex: 'CUST-\\d{8}', label: C}
        response_rules:
          - name: stop-secrets
            when: {detects: ["secrets.*"], channels: [reasoning, tool_args]}
            action: terminate
            message: stopped
          - name: flag-customers
            when: {detects: [customer_id], regex: 'Project\\s+Falcon', not_groups: [privacy-team]}
        """)
    stop, flag = load_policy(write.dir, registry).response_rules
    assert stop.action == "terminate" and stop.message == "stopped"
    assert stop.channels == {"reasoning", "tool_args"}
    assert stop.detects == {"secrets.aws_access_key", "secrets.github_token"}
    assert flag.action == "flag" and flag.channels == {"content", "reasoning", "tool_args"}
    assert stop.fires("reasoning", "AKIA...", {"secrets.aws_access_key": 1})
    assert not stop.fires("content", "AKIA...", {"secrets.aws_access_key": 1})  # channel not listed
    assert not stop.fires("reasoning", "clean", {})
    assert flag.fires("content", "the Project  Falcon plan", {})  # regex alone
    assert flag.fires("content", "x", {"customer_id": 2})
    assert flag.applies_to(frozenset({"support"})) and not flag.applies_to(frozenset({"privacy-team"}))
    assert load_policy(write.dir, registry).response_detectors == {
        "secrets.aws_access_key", "secrets.github_token", "customer_id"}


def test_response_rule_errors(write, registry):
    import pytest

    from gateway.policy import PolicyError

    p = write("00.yaml", """
        response_rules:
          - name: no-trigger
            when: {channels: [reasoning]}
          - name: bad-channel
            when: {detects: [pii.email], channels: [thinking]}
            action: block
          - name: unknown
            when: {detects: [pii.mail]}
        """)
    with pytest.raises(PolicyError) as info:
        load_policy(p, registry)
    assert [str(x) for x in info.value.problems][:3] == [
        f"{p}:3: response_rules[0].when: a response rule needs `detects` and/or `regex`",
        f"{p}:5: response_rules[1].when.channels[0]: Input should be 'content', 'reasoning' or 'tool_args'",
        f"{p}:6: response_rules[1].action: Input should be 'terminate' or 'flag'",
    ]
    p.write_text("response_rules:\n  - name: unknown\n    when: {detects: [pii.mail]}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(p, registry)
    assert str(info.value).startswith(f"{p}:3: unknown detector 'pii.mail' (did you mean 'pii.email'?")


def test_rule_and_response_rule_names_share_one_namespace(write, registry):
    import pytest

    from gateway.policy import PolicyError

    p = write("00.yaml", "rules:\n  - name: x\nresponse_rules:\n  - name: x\n    when: {regex: a}\n")
    with pytest.raises(PolicyError, match=r"00.yaml:4: duplicate rule name 'x'"):
        load_policy(p, registry)
