"""Operating the gateway process: health, readiness, metrics, logs, graceful shutdown, start-up time."""
from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time

import pytest

from gateway.devtools.scripts import DEFAULT_CONTENT, DEFAULT_REASONING
from tests.e2e.helpers import eventually, metric, raw_http, request_bytes, samples, scrape, sse_data
from tests.support import gateway_config, start_gateway

CHAT = {"model": "fake-reasoner-1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def ops_gateway(issuer, backend):
    """A gateway of our own, so its log holds only what these tests did."""
    proc, url = start_gateway(gateway_config(issuer.url, backend))
    yield proc, url
    proc.stop()


async def test_healthz(ops_gateway, http):
    _, url = ops_gateway
    async with http.get(url + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_readyz_reports_idp_check(ops_gateway, issuer, http):
    _, url = ops_gateway
    async with http.get(url + "/readyz") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        report = await resp.json()
    assert report["ready"] is True
    idp = report["checks"]["idp"]
    assert idp["ready"] is True and idp["issuer"] == issuer.url


async def test_metrics_count_requests_latency_and_streams(ops_gateway, http, auth):
    _, url = ops_gateway
    before = await scrape(url)
    async with http.get(url + "/v1/models", headers=auth) as resp:
        assert resp.status == 200
    async with http.post(url + "/v1/chat/completions", json=CHAT) as resp:
        assert resp.status == 401
    async with http.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth) as resp:
        assert resp.status == 200
        await resp.read()

    async with http.get(url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()

    def delta(name: str, **labels: str) -> float:
        return (metric(text, name, **labels) or 0) - (metric(before, name, **labels) or 0)

    assert delta("gateway_requests_total", route="/v1/models", status="200", decision="allow") == 1
    assert delta("gateway_requests_total", route="/v1/chat/completions", status="200", decision="allow") == 1
    refused = [lbl for lbl, _ in samples(text, "gateway_requests_total")
               if lbl.get("route") == "/v1/chat/completions" and lbl.get("status") == "401"]
    assert refused and refused[0]["decision"] not in ("", "allow")
    assert delta("gateway_upstream_latency_seconds_count", route="/v1/models") == 1
    assert metric(text, "gateway_upstream_latency_seconds_bucket", route="/v1/models", le="+Inf") >= 1
    # Only the streamed chat went upstream; the refused one has no upstream latency.
    assert delta("gateway_upstream_latency_seconds_count", route="/v1/chat/completions") == 1
    assert metric(text, "gateway_active_streams") == 0
    assert "# TYPE gateway_active_streams gauge" in text


async def test_logs_are_json_with_request_ids_and_no_tokens_or_bodies(ops_gateway, http, token):
    proc, url = ops_gateway
    marker = secrets.token_hex(6)
    prompt = f"PROMPT-{marker} my card is 4111 1111 1111 1111"
    answer, thought = f"ANSWER-{marker}", f"REASONING-{marker}"
    knobs = {"X-Fake-Content": answer, "X-Fake-Reasoning": thought}
    body = {"model": "fake-reasoner-1", "messages": [{"role": "user", "content": prompt}]}
    headers = {"Authorization": f"Bearer {token}", **knobs}
    ids = []
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        assert resp.status == 200 and answer in await resp.text()
        ids.append(resp.headers["X-Gateway-Request-Id"])
    async with http.post(url + "/v1/chat/completions", json={**body, "stream": True}, headers=headers) as resp:
        assert resp.status == 200 and (await resp.text()).endswith("data: [DONE]\n\n")
        ids.append(resp.headers["X-Gateway-Request-Id"])
    forged = token[:-8] + "AAAAAAAA"
    async with http.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {forged}"}) as r:
        assert r.status == 401
        ids.append(r.headers["X-Gateway-Request-Id"])
    # A malformed request whose raw bytes (token, body) the HTTP parser would like to quote.
    broken = request_bytes("POST", "/v1/chat/completions", {"Authorization": f"Bearer {token}",
                                                             "Transfer-Encoding": "chunked"}) + \
        f"zz\r\n{prompt}\r\n0\r\n\r\n".encode()
    assert [r.status for r in (await raw_http(url, broken)).responses] == [400]

    async def logged() -> bool:
        return all(i in proc.output() for i in ids) and "http_error" in proc.output()

    assert await eventually(logged, timeout=3), proc.output()[-2000:]
    output = proc.output()
    records = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is JSON
    by_id = {r.get("request_id"): r for r in records if r.get("event") == "request"}
    assert by_id[ids[0]]["status"] == 200 and by_id[ids[0]]["route"] == "/v1/chat/completions"
    assert by_id[ids[2]]["status"] == 401
    for secret in (token, token.split(".")[2][:40], forged, marker, "4111 1111", answer, thought):
        assert secret not in output, f"{secret[:20]!r} leaked into the log"


async def test_graceful_shutdown_finishes_streams_and_refuses_new_connections(issuer, backend, http, auth):
    proc, url = start_gateway(gateway_config(issuer.url, backend))
    try:
        slow = {"X-Fake-Chunks": "15", "X-Fake-Delay-Ms": "100"}  # ~1.5 s
        resp = await http.post(url + "/v1/chat/completions", json={**CHAT, "stream": True},
                               headers={**auth, **slow})
        assert resp.status == 200
        first = await resp.content.readuntil(b"\n\n")
        proc.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        host, port = url.removeprefix("http://").split(":")

        async def refused() -> bool:
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except (ConnectionRefusedError, ConnectionResetError):  # reset: caught in the closing listener's backlog
                return True
            writer.close()
            return False

        assert await eventually(refused, timeout=1, interval=0.02), "still accepting connections after SIGTERM"
        assert time.monotonic() - signalled < 1.0, "the stream must still be in flight while we check"
        rest = await asyncio.wait_for(resp.content.read(), 10)
        resp.release()
        data = [json.loads(d) for d in sse_data(first + rest)[:-1]]
        assert sse_data(first + rest)[-1] == "[DONE]"
        deltas = [d["choices"][0]["delta"] for d in data if d["choices"]]
        assert "".join(d.get("reasoning_content", "") for d in deltas) == DEFAULT_REASONING
        assert "".join(d.get("content", "") for d in deltas) == DEFAULT_CONTENT

        code = await asyncio.to_thread(proc.popen.wait, 10)
        assert code == 0
        assert '"shutting_down"' in proc.output()
    finally:
        proc.stop()


async def test_startup_to_ready_is_quick(issuer, backend):
    started = time.monotonic()
    proc, url = await asyncio.to_thread(start_gateway, gateway_config(issuer.url, backend))
    elapsed = time.monotonic() - started
    try:
        assert elapsed < 3.0, f"gateway serve took {elapsed:.2f} s to become ready"
    finally:
        assert proc.stop() == 0
