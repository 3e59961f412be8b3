"""The benchmark's tools count right: the load generator (all modes) and the bare proxy, against the backend."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bench import report
from bench.bare_proxy import run_bare_proxy
from bench.loadgen import CHAT_BODY, LoadConfig, hold_streams, percentile, run_load, serve

STREAM_BODY = json.dumps({**json.loads(CHAT_BODY), "stream": True})
CHAT = "/v1/chat/completions"


async def test_closed_loop_counts_requests_and_bytes(backend_url):
    r = await run_load(LoadConfig(url=backend_url + CHAT, concurrency=4, requests=20))
    assert (r["requests"], r["ok"], r["errors"], r["total_requests"]) == (20, 20, 0, 20)
    assert r["statuses"] == {"200": 20} and r["events"] == 0 and r["bytes"] > 20 * 500
    assert r["latency_p50_ms"] <= r["latency_p99_ms"] and r["ttfc_p50_ms"] is None


async def test_streams_count_sse_events_and_ttfc(backend_url):
    r = await run_load(LoadConfig(url=backend_url + CHAT, body=STREAM_BODY, stream=True, concurrency=3,
                                  requests=6, headers={"X-Fake-Chunks": "10"}))
    assert r["ok"] == 6 and r["events"] == 6 * (1 + 10 + 1 + 1)  # role, deltas, finish, [DONE]
    assert r["ttfc_p50_ms"] is not None and r["ttfc_p50_ms"] <= r["latency_p99_ms"]


async def test_errors_and_duration_bound(backend_url):
    r = await run_load(LoadConfig(url=backend_url + CHAT, concurrency=2, duration=0.2,
                                  headers={"X-Fake-Status": "503"}))
    assert r["ok"] == 0 and r["errors"] == r["requests"] > 0 and set(r["statuses"]) == {"503"}
    dead = await run_load(LoadConfig(url="http://127.0.0.1:9/x", concurrency=1, requests=2, timeout=2))
    assert dead["statuses"] == {"0": 2}


async def test_fixed_rate_interleaves_targets(backend_url):
    targets = [{"url": backend_url + CHAT}, {"url": backend_url + "/_test/echo", "headers": {"X-T": "b"}}]
    r = await run_load(LoadConfig(url="unused", rate=200, requests=10, concurrency=2, targets=targets))
    first, second = r["targets"]
    assert first["ok"] == second["ok"] == 5
    async with aiohttp.ClientSession() as s, s.get(backend_url + "/_test/last") as last:
        assert (await last.json())["headers"]["x-t"] == "b"


async def test_hold_mode_keeps_streams_open_until_released(backend_url):
    release = asyncio.Event()
    seen = {}

    async def report(held, failed):
        async with aiohttp.ClientSession() as s, s.get(backend_url + "/_test/stats") as r:
            seen.update(await r.json())
        release.set()

    cfg = LoadConfig(url=backend_url + CHAT, body=STREAM_BODY, hold_streams=3, timeout=5,
                     headers={"X-Fake-Stall-After": "1"})
    assert await hold_streams(cfg, release, report) == {"held": 3, "failed": 0}
    assert seen["in_flight"] == 3


async def test_serve_protocol(backend_url):
    lines = asyncio.Queue()
    answers = []
    await lines.put(json.dumps({"load": {"url": backend_url + CHAT, "requests": 3, "concurrency": 1}}))
    await lines.put("")  # EOF
    await serve(reader=lines.get, write=answers.append)
    assert answers[0]["ok"] == 3


def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0


async def test_bare_proxy_strips_hop_by_hop_and_streams(backend_url):
    runner, proxy = await run_bare_proxy(backend_url)
    try:
        async with aiohttp.ClientSession() as s:
            headers = {"Connection": "keep-alive, X-Private", "X-Private": "1", "Keep-Alive": "timeout=5",
                       "X-Kept": "yes"}
            async with s.post(proxy + "/_test/echo/a%2Fb?x=%20", data=b"body", headers=headers) as r:
                echoed = await r.json()
            async with s.post(proxy + CHAT, data=STREAM_BODY, headers={"X-Fake-Chunks": "4"}) as r:
                assert r.headers["Content-Type"].startswith("text/event-stream")
                body = await r.read()
    finally:
        await runner.cleanup()
    assert echoed["path"] == "/_test/echo/a%2Fb" and echoed["query"] == "x=%20" and echoed["body"] == "body"
    assert echoed["headers"]["x-kept"] == "yes"
    assert not {"x-private", "keep-alive"} & set(echoed["headers"])
    assert body.count(b"\n\n") == 7 and body.endswith(b"data: [DONE]\n\n")


async def test_load_config_needs_a_bound():
    with pytest.raises(ValueError):
        await run_load(LoadConfig(url="http://127.0.0.1:9/"))


def test_report_medians_and_checks():
    def rnd(g_rps, b_rps):
        return {"gateway": {"nonstream": {"rps": g_rps}, "light": {"latency_p50_ms": 1.2}},
                "bare": {"nonstream": {"rps": b_rps}, "light": {"latency_p50_ms": 1.0}}}

    summary = report.medians([rnd(80, 100), rnd(90, 100), rnd(10, 100)])
    assert summary["gateway"]["nonstream"]["rps"] == 80
    verdicts = {c["check"]: c["pass"] for c in report.checks(summary)}
    assert verdicts["gateway/bare throughput, non-stream"] is True
    assert verdicts["added p50 over bare at light rate (ms)"] is True
    assert verdicts["gateway start-up, spawn to /readyz 200 (s)"] is None  # not measured
    assert verdicts["masked/gateway chunks/s, stream"] is None and report.derived(summary)[
        "masking_cpu_us_per_chunk"] is None  # no masked target


def test_report_masked_checks_and_cost():
    summary = report.medians([{
        "bare": {"nonstream": {"rps": 100}, "stream": {"events_per_s": 1000, "cpu_us_per_chunk": 5.0}},
        "gateway": {"nonstream": {"rps": 90, "cpu_us_per_request": 170},
                    "stream": {"events_per_s": 1000, "cpu_us_per_chunk": 6.0}},
        "masked": {"nonstream": {"rps": 55, "cpu_us_per_request": 260},
                   "stream": {"events_per_s": 600, "cpu_us_per_chunk": 20.0}}}])
    rows = {c["check"]: c for c in report.checks(summary)}
    assert rows["masked/gateway chunks/s, stream"]["pass"] is True
    assert rows["masked/gateway chunks/s, stream"]["shown"] == "60%"
    assert rows["masked/bare throughput, non-stream"]["pass"] is False
    assert report.derived(summary) == {"masking_cpu_us_per_chunk": 14.0, "masking_cpu_us_per_request": 90}
    text = report.render(summary, ["bare", "gateway", "masked"], list(rows.values()), [])
    assert "masking cost per chunk, masked − gateway CPU: +14.0 µs" in text
