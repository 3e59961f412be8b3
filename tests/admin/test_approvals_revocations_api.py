"""The approver and admin endpoints without sockets to a gateway: input checking, roles, store refusals mapped to
their codes, and audit-before-action (through the admin frame)."""
from __future__ import annotations

import time

import pytest
from aiohttp import web

from gateway.admin import INVESTIGATOR_ENDPOINTS, AdminContext, setup_admin
from gateway.admin import approvals as approval_endpoints
from gateway.admin import revocations as revocation_endpoints
from gateway.approvals import MemoryApprovalStore
from gateway.approvals.model import Approval, Requester, new_approval_id
from gateway.revocation import MemoryRevocationStore
from tests.admin.conftest import ADMIN, APPROVER, NOBODY, SETTINGS, FakeVerifier, Recorder


def pending(requester: str = "carol") -> Approval:
    now = time.time()
    return Approval(id=new_approval_id(), state="pending", rule="r", requester=Requester(requester, ("support",)),
                    fingerprint="f" * 64, approver_groups=("approvers",), min_approvals=1, created_at=now,
                    expires_at=now + 60, excerpt="why was [CUSTOMER_ID] billed", method="POST",
                    path="/v1/chat/completions", session_id="s1", request_id="r1")


@pytest.fixture
async def api(aiohttp_client):
    app = web.Application()
    recorder = Recorder()
    approvals = MemoryApprovalStore(grant_ttl_s=60)
    revocations = MemoryRevocationStore()
    app[approval_endpoints.APPROVALS] = approvals
    app[revocation_endpoints.REVOCATIONS] = revocations
    setup_admin(app, AdminContext(verifier=FakeVerifier(), settings=SETTINGS, record_admin=recorder),
                [*INVESTIGATOR_ENDPOINTS, *approval_endpoints.ENDPOINTS, *revocation_endpoints.ENDPOINTS])
    client = await aiohttp_client(app)
    return client, approvals, revocations, recorder


async def test_decision_input_and_store_refusals(api):
    client, approvals, _, recorder = api
    a, _ = await approvals.open(pending())
    url = f"/admin/approvals/{a.id}/decision"
    for body, status in ((b"not json", 400), (b"[]", 400), (b'{"decision": "maybe"}', 400),
                         (b'{"decision": "approve", "extra": 1}', 400), (b'{"decision": "approve", "reason": 5}', 400)):
        resp = await client.post(url, data=body, headers=APPROVER)
        assert resp.status == status, (body, await resp.text())
    resp = await client.post(url, data=b"x" * 20000, headers=APPROVER)
    assert resp.status == 413
    resp = await client.post(url, json={"decision": "approve"}, headers=NOBODY)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.post("/admin/approvals/nope/decision", json={"decision": "approve"}, headers=APPROVER)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "approval_not_found"
    resp = await client.post(url, json={"decision": "approve", "reason": "ok"}, headers=APPROVER)
    assert resp.status == 200 and (await resp.json())["state"] == "approved"
    resp = await client.post(url, json={"decision": "deny"}, headers=APPROVER)
    assert resp.status == 409
    # every call, refused ones included, was audited before it ran
    assert [c[1] for c in recorder.calls].count("approvals.decide") == 10


async def test_listing_and_showing(api):
    client, approvals, _, _ = api
    a, _ = await approvals.open(pending())
    resp = await client.get("/admin/approvals?state=pending", headers=APPROVER)
    listed = await resp.json()
    assert [x["id"] for x in listed["approvals"]] == [a.id] and listed["next"] is None
    assert "fingerprint" not in listed["approvals"][0]
    assert (await client.get("/admin/approvals?state=bogus", headers=APPROVER)).status == 400
    assert (await client.get("/admin/approvals?limit=0", headers=APPROVER)).status == 400
    shown = await (await client.get(f"/admin/approvals/{a.id}", headers=APPROVER)).json()
    assert shown["excerpt"] == "why was [CUSTOMER_ID] billed"


async def test_revocation_endpoints(api):
    client, _, revocations, recorder = api
    for body in (b"{}", b'{"subject": "a", "jti": "b", "reason": "x"}', b'{"subject": "a", "reason": "x", "y": 1}',
                 b'{"subject": "a", "reason": "x", "ttl_s": "1"}', b'{"subject": "", "reason": "x"}',
                 b'{"subject": "a"}'):
        resp = await client.post("/admin/revocations", data=body, headers=ADMIN)
        assert resp.status == 400, (body, await resp.text())
    assert (await client.post("/admin/revocations", json={"subject": "a", "reason": "x"},
                              headers=APPROVER)).status == 403
    resp = await client.post("/admin/revocations", json={"jti": "raw-token-id", "reason": "leak", "ttl_s": 60},
                             headers=ADMIN)
    created = await resp.json()
    assert resp.status == 201 and created["kind"] == "jti" and created["value"] != "raw-token-id"
    assert "raw-token-id" not in repr(recorder.calls)  # the admin record never holds the raw token id
    listed = await (await client.get("/admin/revocations", headers=ADMIN)).json()
    assert [r["id"] for r in listed["revocations"]] == [created["id"]]
    assert (await client.delete(f"/admin/revocations/{created['id']}", headers=ADMIN)).status == 200
    assert (await client.delete(f"/admin/revocations/{created['id']}", headers=ADMIN)).status == 404
