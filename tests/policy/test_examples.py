"""The shipped example policies are valid and their incident test cases pass, against the real catalog and
masker (what `gateway policy check/test` use)."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.catalog import CatalogRegistry, PolicyMaskers
from gateway.policy import load_policy
from gateway.policy.cli import check, test

@pytest.fixture
def registry() -> CatalogRegistry:
    return CatalogRegistry()


def real_masker():
    maskers = PolicyMaskers(hmac_key=None, max_hold_chars=8192, max_hold_s=5.0)

    def mask(policy, text: str, side: str) -> str:
        names = policy.masking.response if side == "response" else policy.masking.request
        return maskers.masker(policy, names).mask_text(text)[0]

    return mask


ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


def test_examples_check(registry):
    out = io.StringIO()
    assert check(POLICIES, registry, out=out, err=out) == 0
    assert out.getvalue() == "OK: 2 files, 3 rules, 2 detectors\n"


def test_examples_shape(registry):
    policy = load_policy(POLICIES, registry)
    assert [r.name for r in policy.rules] == ["ci-gets-no-reasoning", "secrets-in-prompt",
                                              "customer-data-needs-approval"]
    assert {"customer_id", "pii.email", "secrets.aws_access_key"} <= policy.masking.response
    assert policy.masking.style == "label"
    assert [r.action for r in policy.response_rules] == ["terminate", "flag"]


def test_incident_cases_pass(registry):
    out = io.StringIO()
    code = test(POLICIES / "tests" / "incident.yaml", POLICIES, registry, masker=real_masker(), out=out,
                err=out)
    assert code == 0, out.getvalue()
    lines = out.getvalue().splitlines()
    assert all(line.startswith("PASS ") for line in lines[:-1]) and lines[-1] == "7/7 passed"
