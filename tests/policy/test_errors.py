"""Every problem names the file and the line of the offending node."""
from __future__ import annotations

import pytest

from gateway.policy import PolicyError, load_policy


def problems(path, registry) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(path, registry)
    return [str(p) for p in info.value.problems]


def test_unknown_key_points_at_the_key_and_lists_allowed_keys(write, registry):
    p = write("10-rules.yaml", """
        rules:
          - name: r1
            action: deny
            actoin: allow
        """)
    (msg,) = problems(write.dir, registry)
    assert msg.startswith(f"{p}:4: rules[0]: unknown key 'actoin' (allowed: name, description, when, action,")


def test_response_side_condition_in_request_rules_gets_a_hint(write, registry):
    p = write("10-rules.yaml", """
        rules:
          - name: r1
            when:
              groups: [a]
              detects: ["secrets.*"]
        """)
    assert problems(write.dir, registry) == [
        f"{p}:5: rules[0].when: unknown key 'detects' (request rules use request_detects; "
        "`detects` belongs to response_rules)"
    ]


def test_request_condition_in_a_response_rule_gets_a_hint(write, registry):
    p = write("10-rules.yaml", """
        response_rules:
          - name: r1
            when: {detects: [pii.email], routes: ['/v1/*']}
        """)
    assert problems(write.dir, registry) == [
        f"{p}:3: response_rules[0].when: unknown key 'routes' "
        "(response rules take detects, regex, channels, groups, not_groups)"
    ]


def test_bad_type_and_bad_enum(write, registry):
    p = write("a.yaml", """
        rules:
          - name: r1
            when: {groups: ci-bots}
          - name: r2
            reasoning: hide
        """)
    assert problems(write.dir, registry) == [
        f"{p}:3: rules[0].when.groups: Input should be a valid list",
        f"{p}:5: rules[1].reasoning: Input should be 'pass', 'mask' or 'drop'",
    ]


def test_invalid_regex_names_the_regex_error(write, registry):
    p = write("00-detectors.yaml", """
        detectors:
          - name: ok
            keywords: [x]
            label: OK
          - name: cust
            label: CUSTOMER_ID
            regex: 'CUST-(\\d{8}'
        """)
    (msg,) = problems(write.dir, registry)
    assert msg.startswith(f"{p}:7: detectors[1].regex: invalid regex")
    assert "missing ), unterminated subpattern" in msg


def test_invalid_request_regex_in_a_rule(write, registry):
    p = write("a.yaml", "rules:\n  - name: r\n    when: {request_regex: '[a-'}\n")
    (msg,) = problems(p, registry)
    assert msg.startswith(f"{p}:3: rules[0].when.request_regex: invalid regex '[a-':")


def test_yaml_syntax_error_uses_the_parser_mark(write, registry):
    p = write("a.yaml", "rules:\n  - name: r\n    when: {groups: [x]\n  - name: s\n")
    (msg,) = problems(write.dir, registry)
    assert msg.startswith(f"{p}:4: invalid YAML:")


def test_duplicate_yaml_key(write, registry):
    p = write("a.yaml", "rules:\n  - name: r\n    action: deny\n    action: allow\n")
    assert problems(p, registry) == [f"{p}:4: duplicate key 'action'"]


def test_empty_approver_groups_and_zero_min_approvals(write, registry):
    p = write("a.yaml", """
        rules:
          - name: r
            action: require_approval
            approval:
              approver_groups: []
              min_approvals: 0
        """)
    assert problems(p, registry) == [
        f"{p}:5: rules[0].approval.approver_groups: list at least one approver group (and no empty names): "
        "nobody could approve",
        f"{p}:6: rules[0].approval.min_approvals: Input should be greater than or equal to 1",
    ]


def test_require_approval_without_approval_block_and_approval_on_allow(write, registry):
    p = write("a.yaml", """
        rules:
          - name: needs
            action: require_approval
          - name: stray
            approval: {approver_groups: [sre]}
        """)
    assert problems(p, registry) == [
        f"{p}:2: rules[0]: rule 'needs': action require_approval needs an `approval` block",
        f"{p}:4: rules[1]: rule 'stray': `approval` only applies to action require_approval",
    ]


def test_missing_required_key_points_at_the_parent(write, registry):
    p = write("a.yaml", "rules:\n  - action: deny\n")
    assert problems(p, registry) == [f"{p}:2: rules[0].name: required key is missing"]


def test_detector_names_reserved_prefix_and_one_kind(write, registry):
    p = write("a.yaml", """
        detectors:
          - {name: pii.mine, keywords: [x], label: X}
          - name: both
            label: B
            regex: x
            keywords: [x]
        """)
    assert problems(p, registry) == [
        f"{p}:2: detectors[0].name: 'pii.mine': names starting with pii. or secrets. are reserved for built-ins",
        f"{p}:3: detectors[1]: detector 'both' needs exactly one of `regex` or `keywords`",
    ]


def test_duplicate_rule_names_across_files(write, registry):
    a = write("00-a.yaml", "rules:\n  - name: same\n")
    b = write("10-b.yaml", "rules:\n  - name: other\n  - name: same\n    action: deny\n")
    assert problems(write.dir, registry) == [f"{b}:3: duplicate rule name 'same' (first defined at {a}:2)"]


def test_duplicate_detector_name(write, registry):
    a = write("00-a.yaml", "detectors:\n  - {name: cust, regex: x, label: C}\n")
    b = write("10-b.yaml", "# more\ndetectors:\n  - {name: cust, regex: y, label: C}\n")
    assert problems(write.dir, registry) == [f"{b}:3: detector 'cust' already defined at {a}:2"]


def test_unknown_detector_and_empty_glob_list_the_known_names(write, registry):
    write("00-d.yaml", "detectors:\n  - {name: customer_id, regex: 'CUST-\\d+', label: C}\n")
    p = write("10-r.yaml", """
        rules:
          - name: r
            when:
              request_detects:
                - customer_id
                - "secret.*"
                - customer_ids
        """)
    known = "customer_id, pii.email, pii.phone, secrets.aws_access_key, secrets.github_token"
    assert problems(write.dir, registry) == [
        f"{p}:6: glob matches no detector 'secret.*' (known detectors: {known})",
        f"{p}:7: unknown detector 'customer_ids' (did you mean 'customer_id'? known detectors: {known})",
    ]


def test_masking_selectors_are_checked_too(write, registry):
    p = write("a.yaml", "masking:\n  response: [\"pii.*\"]\n  request:\n    - nothing.*\n")
    (msg,) = problems(p, registry)
    assert msg.startswith(f"{p}:4: glob matches no detector 'nothing.*'")


def test_style_conflict_between_files_names_both_places(write, registry):
    a = write("00-a.yaml", "masking: {style: label}\n")
    b = write("10-b.yaml", "# b\nmasking:\n  style: partial\n")
    write("20-c.yaml", "masking: {style: label}\n")  # repeating the same value is fine
    assert problems(write.dir, registry) == [f"{b}:3: masking.style 'partial' conflicts with 'label' set at {a}:1"]


def test_problems_from_several_files_are_all_reported(write, registry):
    a = write("00-a.yaml", "rules: {}\n")
    b = write("10-b.yaml", "bogus: 1\n")
    assert problems(write.dir, registry) == [
        f"{a}:1: rules: Input should be a valid list",
        f"{b}:1: (top level): unknown key 'bogus' (allowed: detectors, rules, response_rules, masking, defaults)",
    ]


def test_top_level_must_be_a_mapping(write, registry):
    p = write("a.yaml", "- just\n- a list\n")
    (msg,) = problems(p, registry)
    assert msg.startswith(f"{p}:1: (top level): Input should be a valid dictionary")


def test_missing_path_and_empty_directory(tmp_path, registry):
    assert problems(tmp_path / "nope", registry) == [f"{tmp_path / 'nope'}: no such file or directory"]
    assert problems(tmp_path, registry) == [f"{tmp_path}: no policy files (*.yaml) in this directory"]


def test_empty_list_condition_is_refused(write, registry):
    p = write("a.yaml", "rules:\n  - name: r\n    when:\n      groups: []\n")
    (msg,) = problems(p, registry)
    assert msg.startswith(f"{p}:4: rules[0].when.groups: an empty list never matches")
