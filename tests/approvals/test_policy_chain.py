"""Policy filter + approval gate with a real policy, catalog and prompt masker (no sockets)."""
from __future__ import annotations

import asyncio
import json

import pytest

from gateway.approvals import MemoryApprovalStore
from gateway.catalog import CatalogRegistry, PolicyMaskers
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.approval import APPROVAL, ApprovalGate
from gateway.filters.chain import FilterChain
from gateway.filters.policy import PolicyFilter
from gateway.policy.reload import PolicyStore
from gateway.principal import Principal
from tests.approvals.test_gate import After, settings

POLICY_YAML = """
detectors:
  - {name: customer_id, regex: '\\bCUST-\\d{8}\\b', label: CUSTOMER_ID}
rules:
  - name: customer-data-needs-approval
    when: {request_detects: [customer_id], not_groups: [privacy-team]}
    action: require_approval
    approval: {approver_groups: [sre-approvers], min_approvals: 1}
masking:
  response: [customer_id]
  request: [customer_id]
"""


def body(customer: str) -> bytes:
    return json.dumps({"model": "r1", "messages": [{"role": "user", "content": f"Summarise {customer}"}]}).encode()


@pytest.fixture
def policy_store(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_YAML)
    store = PolicyStore(path, CatalogRegistry())
    store.load()
    return store


def chain_for(policy_store, approvals, approvals_enabled=True):
    maskers = PolicyMaskers(hmac_key=None, max_hold_chars=4096, max_hold_s=60)
    policy = PolicyFilter(policy_store, lambda p, t, n: maskers.masker(p, n).mask_text(t),
                          approvals_enabled=approvals_enabled)
    after = After()
    gate = ApprovalGate(approvals, settings(hold_s=0.1), lambda ex: ex.body.decode()[:200])
    return FilterChain([policy, gate, after]) if approvals_enabled else FilterChain([policy, after]), after


def exchange(customer: str) -> Exchange:
    return Exchange(method="POST", path="/v1/chat/completions", body=body(customer),
                    principal=Principal("alice", ("eng",)))


async def run(chain, ex):
    try:
        await chain.run_request(ex)
    except GatewayError as err:
        return err
    return None


async def test_without_a_gate_require_approval_still_fails_closed(policy_store):
    chain, after = chain_for(policy_store, MemoryApprovalStore(), approvals_enabled=False)
    err = await run(chain, exchange("CUST-00012345"))
    assert err.status == 503 and err.code == "approval_unavailable" and after.passed == []


async def test_approval_binds_the_body_as_sent_not_the_masked_copy(policy_store):
    approvals = MemoryApprovalStore()
    chain, after = chain_for(policy_store, approvals)
    err = await run(chain, exchange("CUST-00012345"))
    assert err.code == "approval_pending"
    stored = await approvals.get(err.extra["approval_id"])
    assert "CUST-00012345" not in stored.excerpt and "[CUSTOMER_ID]" in stored.excerpt
    await approvals.decide(stored.id, "bob", ["sre-approvers"], "approve", "")

    same = exchange("CUST-00012345")
    assert await run(chain, same) is None and same.annotations[APPROVAL]["state"] == "approved"
    assert b"CUST-00012345" not in same.body  # forwarded with the prompt masked
    # Masks to the very same forwarded body, but it is another customer: it needs its own approval.
    other = exchange("CUST-00099999")
    err2 = await run(chain, other)
    assert err2 is not None and err2.code == "approval_pending" and err2.extra["approval_id"] != stored.id
    assert after.passed == [same.request_id]


async def test_unflagged_requests_are_not_parked(policy_store):
    chain, after = chain_for(policy_store, MemoryApprovalStore())
    ex = exchange("nobody")
    assert await asyncio.wait_for(run(chain, ex), 1) is None and after.passed == [ex.request_id]
