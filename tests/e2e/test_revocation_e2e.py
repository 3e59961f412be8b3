"""The kill switch through real processes: a revocation refuses new requests and cuts the principal's live
streams, on one gateway and across two gateways sharing Redis."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.support import gateway_config, start_gateway

SLOW = {"X-Fake-Chunks": "200", "X-Fake-Delay-Ms": "50"}  # a 10 s stream
CHAT = {"model": "fake-reasoner-1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def revoke(http, url, admin_token, **what):
    async with http.post(url + "/admin/revocations", json={**what, "reason": "leaked", "ttl_s": 300},
                         headers={"Authorization": f"Bearer {admin_token}"}) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def stream_until_cut(http, url, token) -> tuple[float, bytes]:
    """Stream; returns (monotonic time the stream ended, everything received)."""
    got = b""
    async with http.post(url + "/v1/chat/completions", json=CHAT,
                         headers={"Authorization": f"Bearer {token}", **SLOW}) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_any():
            got += chunk
    return time.monotonic(), got


async def check_cut_within_a_second(http, stream_url, admin_url, issuer, sub):
    token = issuer.mint(sub, ["engineers"])
    task = asyncio.create_task(stream_until_cut(http, stream_url, token))
    await asyncio.sleep(0.5)  # the stream is flowing
    assert not task.done()
    t0 = time.monotonic()
    await revoke(http, admin_url, issuer.mint("root", ["gateway-admins"]), subject=sub)
    ended, got = await asyncio.wait_for(task, 5)
    assert ended - t0 < 1.0, ended - t0
    last = got.decode().strip().split("\n\n")[-1]
    assert "stream_terminated" in last and "revoked" in last
    async with http.post(stream_url + "/v1/chat/completions", json=CHAT,
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "token_revoked"


async def test_revocation_cuts_live_stream_and_refuses_new_requests(issuer, backend, http):
    proc, url = start_gateway(gateway_config(issuer.url, backend, admin={"admin_groups": ["gateway-admins"]}))
    try:
        await check_cut_within_a_second(http, url, url, issuer, "eve")
        # another principal is untouched
        async with http.get(url + "/v1/models",
                            headers={"Authorization": f"Bearer {issuer.mint('frank', ['engineers'])}"}) as resp:
            assert resp.status == 200
        # non-admins cannot revoke
        async with http.post(url + "/admin/revocations", json={"subject": "frank", "reason": "x"},
                             headers={"Authorization": f"Bearer {issuer.mint('frank', ['engineers'])}"}) as resp:
            assert resp.status == 403
    finally:
        proc.stop()


async def test_revocation_on_b_cuts_stream_on_a(issuer, backend, http, redis_url):
    shared = {"revocations": {"backend": "redis", "redis_url": redis_url},
              "admin": {"admin_groups": ["gateway-admins"]}}
    a, url_a = start_gateway(gateway_config(issuer.url, backend, **json.loads(json.dumps(shared))))
    b, url_b = start_gateway(gateway_config(issuer.url, backend, **json.loads(json.dumps(shared))))
    try:
        await check_cut_within_a_second(http, url_a, url_b, issuer, "mallory")
    finally:
        a.stop()
        b.stop()
