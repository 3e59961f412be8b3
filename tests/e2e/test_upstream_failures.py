"""When the backend is down, silent or abandoned: the client's dialect, the contract codes, no leaks."""
from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest

from tests.e2e.helpers import backend_stats, eventually, metric, scrape, sse_data
from tests.support import free_port, gateway_config, start_gateway

CHAT = {"model": "fake-reasoner-1", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "fake-claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def dead_upstream_gateway(issuer):
    """Upstream on a loopback port nobody listens on."""
    proc, url = start_gateway(gateway_config(issuer.url, f"http://127.0.0.1:{free_port()}"))
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def impatient_gateway(issuer, backend):
    proc, url = start_gateway(gateway_config(issuer.url, backend, upstream={"read_timeout_s": 0.5}))
    yield url
    proc.stop()


async def test_upstream_down_is_502_openai_shape(dead_upstream_gateway, http, auth):
    async with http.post(dead_upstream_gateway + "/v1/chat/completions", json=CHAT, headers=auth) as resp:
        body = await resp.json()
        assert resp.status == 502
        assert resp.headers["X-Gateway-Request-Id"]
    assert body["error"]["code"] == "upstream_error" and body["error"]["type"] == "api_error"
    assert body["error"]["message"]


async def test_upstream_down_is_502_anthropic_shape(dead_upstream_gateway, http, auth):
    async with http.post(dead_upstream_gateway + "/v1/messages", json=MESSAGES,
                         headers={**auth, "anthropic-version": "2023-06-01"}) as resp:
        body = await resp.json()
        assert resp.status == 502
    assert body == {"type": "error", "error": {"type": "upstream_error", "message": body["error"]["message"]}}


def test_upstream_down_seen_by_openai_sdk(dead_upstream_gateway, token):
    client = openai.OpenAI(base_url=dead_upstream_gateway + "/v1", api_key=token, max_retries=0)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(**CHAT)
    assert err.value.status_code == 502 and err.value.code == "upstream_error"


async def test_upstream_error_status_is_passed_through_not_rewritten(gateway, http, auth):
    """A backend's own error reply is the backend's answer: relayed as is, not turned into upstream_error."""
    async with http.post(gateway + "/v1/chat/completions", json=CHAT,
                         headers={**auth, "X-Fake-Status": "503"}) as resp:
        body = await resp.json()
        assert resp.status == 503
    assert "fake error requested" in body["error"]["message"]


async def test_silent_upstream_is_504(impatient_gateway, backend, http, auth):
    before = await backend_stats(backend)
    started = time.monotonic()
    async with http.post(impatient_gateway + "/_test/stall", json=CHAT, headers=auth) as resp:
        body = await resp.json()
        assert resp.status == 504
    assert time.monotonic() - started < 3
    assert body["error"]["code"] == "upstream_timeout" and body["error"]["type"] == "timeout_error"

    async def released() -> bool:  # the gateway hung up on the stalled backend request
        return (await backend_stats(backend))["cancelled"] > before["cancelled"]

    assert await eventually(released, timeout=3)


async def test_silent_upstream_is_504_anthropic_shape(impatient_gateway, http, auth):
    async with http.post(impatient_gateway + "/_test/stall", json=MESSAGES,
                         headers={**auth, "anthropic-version": "2023-06-01"}) as resp:
        body = await resp.json()
        assert resp.status == 504
    assert body["type"] == "error" and body["error"]["type"] == "upstream_timeout"


async def test_stream_that_goes_silent_ends_with_sse_error_event(impatient_gateway, http, auth):
    async with http.post(impatient_gateway + "/_test/stall_body", json={**CHAT, "stream": True},
                         headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        first = await resp.content.readuntil(b"\n\n")
        rest = await asyncio.wait_for(resp.content.read(), 5)  # read() returns at the end of the stream
    data = sse_data(first + rest)
    assert len(data) == 2, data
    assert json.loads(data[0])["id"] == "chatcmpl-stall"
    error = json.loads(data[1])["error"]
    assert error["code"] == "upstream_timeout" and error["message"]


async def test_client_disconnect_cancels_upstream_and_stream_gauge_returns_to_zero(gateway, backend, http, auth):
    before = await backend_stats(backend)
    slow = {"X-Fake-Chunks": "100", "X-Fake-Delay-Ms": "100"}  # ~10 s if nobody hangs up
    resp = await http.post(gateway + "/v1/chat/completions", json={**CHAT, "stream": True},
                           headers={**auth, **slow})
    assert resp.status == 200
    first = await resp.content.readuntil(b"\n\n")
    assert first.startswith(b"data: {")
    assert metric(await scrape(gateway), "gateway_active_streams") >= 1
    resp.close()  # drop the connection mid-stream
    hung_up = time.monotonic()

    async def cancelled() -> bool:
        return (await backend_stats(backend))["cancelled"] > before["cancelled"]

    assert await eventually(cancelled, timeout=2), "the upstream request kept running after the client left"
    assert time.monotonic() - hung_up < 2

    async def no_streams() -> bool:
        return metric(await scrape(gateway), "gateway_active_streams") == 0

    assert await eventually(no_streams, timeout=2)
    stats = await backend_stats(backend)
    assert stats["completed"] == before["completed"], "the abandoned stream ran to its end"
    assert (metric(await scrape(gateway), "gateway_client_disconnects_total") or 0) >= 1
