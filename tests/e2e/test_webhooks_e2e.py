"""Webhooks from a running gateway: approval, policy and digest events arrive signed (checked with the
`standardwebhooks` reference verifier), are retried after a 500 and a 429 with Retry-After, and carry masked
text only."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway.devtools.scripts import PLANTED
from tests.support import gateway_config, start_gateway
from tests.webhooks.receiver import Receiver, Reply, make_secret

POLICIES = Path(__file__).resolve().parents[2] / "policies"


async def test_gateway_events_reach_a_signed_webhook_with_retries(issuer, backend, http, tmp_path):
    secret = make_secret()
    # the first delivery gets a 500, the second a 429 asking for a 1 s pause; then 200s
    async with Receiver(secret, [Reply(500), Reply(429, {"Retry-After": "1"})]) as hook:
        cfg = gateway_config(
            issuer.url, backend, policies={"path": str(POLICIES)},
            admin={"approver_groups": ["sre-approvers"]}, approvals={"hold_s": 0.3},
            audit={"store": f"file://{tmp_path / 'store'}", "spool_dir": str(tmp_path / "spool"),
                   "signing_key": str(tmp_path / "key.pem"), "digest_interval_s": 1},
            webhooks={"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 5,
                      "endpoints": [{"url": hook.url, "secret": secret,
                                     "events": ["approval.requested", "policy.denied", "audit.digest"]}]})
        proc, url = start_gateway(cfg)
        try:
            headers = {"Authorization": f"Bearer {issuer.mint('carol', ['support'])}"}
            body = {"model": "m", "messages": [{"role": "user", "content": "Bill CUST-00411111 again"}]}
            async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
                assert resp.status == 403  # approval pending
            secret_prompt = {"model": "m", "messages": [
                {"role": "user", "content": f"use key {PLANTED['aws_access_key_id']}"}]}
            async with http.post(url + "/v1/chat/completions", json=secret_prompt, headers=headers) as resp:
                assert resp.status == 403  # policy denied
            await hook.wait_for(5, timeout=15)
            assert all(r.verified for r in hook.requests), [r.error for r in hook.requests]
            events = {}
            for r in hook.requests:
                events.setdefault(json.loads(r.body)["type"], []).append(r)
            assert {"approval.requested", "policy.denied"} <= set(events)
            # retried with the same webhook-id after the 500, and after the 429 not before its Retry-After
            first_id = hook.requests[0].headers["webhook-id"]
            same = [r for r in hook.requests if r.headers["webhook-id"] == first_id]
            assert len(same) >= 3
            assert same[2].at - same[1].at >= 0.9
            texts = b"".join(r.body for r in hook.requests).decode()
            assert "CUST-00411111" not in texts and PLANTED["aws_access_key_id"] not in texts
            approval = json.loads(events["approval.requested"][0].body)["data"]
            assert approval["rule"] == "customer-data-needs-approval" and "[CUSTOMER_ID]" in approval["excerpt"]
            await asyncio.sleep(1.5)
            await hook.wait_for(len(hook.requests) + 1, timeout=10)
            assert any(json.loads(r.body)["type"] == "audit.digest" for r in hook.requests)
        finally:
            proc.stop()
