"""Just-in-time approvals through real processes: SDK/HTTP clients -> gateway(s) -> fake backend, approvers on the
admin API; one gateway with the in-memory store, and two gateways sharing Redis and a SeaweedFS audit store."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.audit.replay import iter_records
from tests.e2e.helpers import backend_last
from tests.support import gateway_config, start_gateway

pytest_plugins = ["tests.audit.conftest_s3"]

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ADMIN = {"approver_groups": ["sre-approvers"], "investigator_groups": ["investigators"]}


def chat(prompt: str, stream: bool = False) -> dict:
    return {"model": "fake-reasoner-1", "stream": stream, "messages": [{"role": "user", "content": prompt}]}


def bearer(issuer, sub: str, *groups: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(sub, list(groups) or ['support'])}"}


async def post(http, url, body, headers):
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


async def decide(http, url, approval_id, headers, decision="approve", reason="ok"):
    async with http.post(f"{url}/admin/approvals/{approval_id}/decision", headers=headers,
                         json={"decision": decision, "reason": reason}) as resp:
        return resp.status, await resp.json()


async def pending_id(http, url, body, headers) -> str:
    status, raw, hdrs = await post(http, url, body, headers)
    err = json.loads(raw)["error"]
    assert status == 403 and err["code"] == "approval_pending", raw
    assert int(hdrs["Retry-After"]) >= 1
    return err["approval_id"]


@pytest.fixture(scope="module")
def gw(issuer, backend):
    proc, url = start_gateway(gateway_config(issuer.url, backend, policies={"path": str(POLICIES)}, admin=ADMIN,
                                             approvals={"hold_s": 0.4, "ttl_s": 60, "grant_ttl_s": 60}))
    yield url
    proc.stop()


async def test_approval_flow_refusals_and_grant(gw, issuer, http, backend):
    carol = bearer(issuer, "carol")
    body = chat("Why was CUST-00412345 billed twice?")
    before = await backend_last(backend)
    approval_id = await pending_id(http, gw, body, carol)
    assert await backend_last(backend) == before  # parked, then refused: never forwarded
    bob = bearer(issuer, "bob", "sre-approvers")
    async with http.get(gw + "/admin/approvals?state=pending", headers=bob) as resp:
        inbox = await resp.json()
    item = next(a for a in inbox["approvals"] if a["id"] == approval_id)
    assert item["rule"] == "customer-data-needs-approval" and item["requester"]["sub"] == "carol"
    assert "CUST-00412345" not in item["excerpt"] and "[CUSTOMER_ID]" in item["excerpt"]  # masked excerpt
    # refused: a non-approver (role), and the approvers' own rules are checked by the store
    status, err = await decide(http, gw, approval_id, bearer(issuer, "mallory", "support"))
    assert status == 403 and err["error"]["code"] == "forbidden"
    # approved by bob; a second decision by bob is refused and counts once
    status, approved = await decide(http, gw, approval_id, bob)
    assert status == 200 and approved["state"] == "approved" and approved["decisions"][0]["by"] == "bob"
    status, err = await decide(http, gw, approval_id, bob)
    assert status == 409
    # the identical request passes within grant_ttl_s; a different body does not ride on the approval
    status, raw, _ = await post(http, gw, body, carol)
    assert status == 200, raw
    other = await pending_id(http, gw, chat("Why was CUST-00412346 billed twice?"), carol)
    assert other != approval_id
    # the same body from another principal is another request too
    assert await pending_id(http, gw, body, bearer(issuer, "dave")) != approval_id


async def test_self_approval_and_deny(gw, issuer, http):
    sam = bearer(issuer, "sam", "support", "sre-approvers")  # an approver asking for himself
    approval_id = await pending_id(http, gw, chat("Refund CUST-00400001 please"), sam)
    status, err = await decide(http, gw, approval_id, sam)
    assert status == 403 and err["error"]["code"] == "self_approval"
    status, denied = await decide(http, gw, approval_id, bearer(issuer, "bob", "sre-approvers"), "deny", "no")
    assert status == 200 and denied["state"] == "denied"
    status, raw, _ = await post(http, gw, chat("Refund CUST-00400001 please"), sam)
    # the denied approval is over: the retry asks again (a new pending approval), it never rides on the denial
    assert status == 403 and json.loads(raw)["error"]["code"] == "approval_pending"
    assert json.loads(raw)["error"]["approval_id"] != approval_id


async def test_streaming_client_is_kept_alive_and_released_on_approval(issuer, backend, http):
    proc, url = start_gateway(gateway_config(issuer.url, backend, policies={"path": str(POLICIES)}, admin=ADMIN,
                                             approvals={"hold_s": 10}))
    try:
        body = chat("Stream about CUST-00499999", stream=True)

        async def client():
            async with http.post(url + "/v1/chat/completions", json=body, headers=bearer(issuer, "erin")) as resp:
                assert resp.status == 200 and resp.content_type == "text/event-stream"
                return await resp.read()

        task = asyncio.create_task(client())
        bob = bearer(issuer, "bob", "sre-approvers")
        approval_id = None
        for _ in range(50):
            async with http.get(url + "/admin/approvals?state=pending", headers=bob) as resp:
                items = [a for a in (await resp.json())["approvals"] if a["requester"]["sub"] == "erin"]
            if items:
                approval_id = items[0]["id"]
                break
            await asyncio.sleep(0.05)
        assert approval_id and not task.done()
        t0 = time.monotonic()
        assert (await decide(http, url, approval_id, bob))[0] == 200
        got = await asyncio.wait_for(task, 10)
        assert got.startswith(b": waiting for approval")
        assert b"data: [DONE]" in got
        assert time.monotonic() - t0 < 5
    finally:
        proc.stop()


async def test_client_disconnect_cancels_the_approval(issuer, backend, http):
    proc, url = start_gateway(gateway_config(issuer.url, backend, policies={"path": str(POLICIES)}, admin=ADMIN,
                                             approvals={"hold_s": 10}))
    try:
        task = asyncio.create_task(post(http, url, chat("Cancel me CUST-00488888"), bearer(issuer, "fay")))
        bob = bearer(issuer, "bob", "sre-approvers")
        for _ in range(50):
            async with http.get(url + "/admin/approvals?state=pending", headers=bob) as resp:
                items = [a for a in (await resp.json())["approvals"] if a["requester"]["sub"] == "fay"]
            if items:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        for _ in range(50):
            async with http.get(f"{url}/admin/approvals/{items[0]['id']}", headers=bob) as resp:
                state = (await resp.json())["state"]
            if state == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert state == "cancelled"
    finally:
        proc.stop()


@pytest.fixture
def two_gateways(issuer, backend, redis_url, seaweed, tmp_path):
    """A and B share Redis (approvals, revocations, session heads) and one S3 audit store."""
    procs, urls = [], []
    prefix = f"approvals-{int(time.time() * 1000)}"
    for name in ("a", "b"):
        cfg = gateway_config(
            issuer.url, backend, policies={"path": str(POLICIES)}, admin=ADMIN,
            approvals={"backend": "redis", "redis_url": redis_url, "hold_s": 10},
            revocations={"backend": "redis", "redis_url": redis_url},
            audit={"store": f"s3://{seaweed.bucket}/{prefix}", "spool_dir": str(tmp_path / f"spool-{name}"),
                   "signing_key": str(tmp_path / f"key-{name}.pem"), "digest_interval_s": 1,
                   "s3": {"endpoint_url": seaweed.endpoint, "region": seaweed.region,
                          "access_key_id": seaweed.access_key, "secret_access_key": seaweed.secret_key}})
        proc, url = start_gateway(cfg)
        procs.append(proc)
        urls.append(url)
    yield urls, prefix, [tmp_path / "key-a.pem.pub", tmp_path / "key-b.pem.pub"]
    for proc in procs:
        proc.stop()


async def test_parked_on_a_approved_through_b_completes_on_a_and_is_recorded(two_gateways, issuer, http, seaweed):
    (a, b), prefix, _ = two_gateways
    body = chat("Replica question about CUST-00477777")
    task = asyncio.create_task(post(http, a, body, {**bearer(issuer, "gina"), "X-Session-Id": "sess-ab"}))
    bob = bearer(issuer, "bob", "sre-approvers")
    approval_id = None
    for _ in range(100):
        async with http.get(b + "/admin/approvals?state=pending", headers=bob) as resp:  # B sees A's approval
            items = [x for x in (await resp.json())["approvals"] if x["requester"]["sub"] == "gina"]
        if items:
            approval_id = items[0]["id"]
            break
        await asyncio.sleep(0.05)
    assert approval_id
    t0 = time.monotonic()
    assert (await decide(http, b, approval_id, bob))[0] == 200
    status, raw, _ = await asyncio.wait_for(task, 10)
    assert status == 200, raw
    assert time.monotonic() - t0 < 2
    # the audit log (one S3 store, two writer streams) names the approval and its decider on the forwarded record
    from gateway.audit.s3 import S3Store

    store = S3Store.from_uri(f"s3://{seaweed.bucket}/{prefix}", endpoint_url=seaweed.endpoint,
                             region=seaweed.region, access_key=seaweed.access_key, secret_key=seaweed.secret_key)
    try:
        for _ in range(100):
            recs = [r async for r in iter_records(store, "sess-ab")]
            if any(r.kind == "exchange" for r in recs):
                break
            await asyncio.sleep(0.1)
        kinds = [r.kind for r in recs]
        # requested (A), decided (B) and the exchange (A); the decided record may land after the exchange it
        # released, which names the approval and its deciders itself
        assert sorted(kinds) == ["approval", "approval", "exchange"], kinds
        exchange = next(r for r in recs if r.kind == "exchange")
        assert exchange.approval.approval_id == approval_id and exchange.approval.deciders == ["bob"]
        assert [r.session_seq for r in recs] == list(range(1, len(recs) + 1))  # one chain across both replicas
        assert len({r.stream_id for r in recs}) == 2
    finally:
        await store.close()
    # an investigator verifies the shared store from the command line (both writers' streams, both keys)
    await asyncio.sleep(1.5)  # both streams have signed a digest covering these records
    import os
    import subprocess
    import sys

    env = {**os.environ, "AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key}
    keys = [str(p) for p in two_gateways[2]]
    cmd = [sys.executable, "-m", "gateway.cli", "audit", "verify", "--store", f"s3://{seaweed.bucket}/{prefix}",
           "--s3-endpoint", seaweed.endpoint, "--s3-region", seaweed.region]
    for key in keys:
        cmd += ["--public-key", key]
    out = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1].endswith("valid") and "INVALID" not in out.stdout


async def test_redis_killed_while_parked_gives_503_and_nothing_forwarded(two_gateways, issuer, http, backend,
                                                                         redis_server):
    (a, _), _, _ = two_gateways
    before = await backend_last(backend)
    task = asyncio.create_task(post(http, a, chat("Outage CUST-00466666"), bearer(issuer, "hank")))
    await asyncio.sleep(0.5)
    redis_server.kill()
    try:
        status, raw, _ = await asyncio.wait_for(task, 15)
        assert status == 503 and json.loads(raw)["error"]["code"] == "approval_unavailable", raw
        assert await backend_last(backend) == before
    finally:
        redis_server.start()
