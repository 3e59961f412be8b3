"""The /_test/* controls: echo and last show what arrived; stalls hang; a client disconnect is counted."""
from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest


async def _stats(session, url):
    async with session.get(url + "/_test/stats") as r:
        return await r.json()


async def _wait_for(session, url, **expected):
    for _ in range(100):
        stats = await _stats(session, url)
        if all(stats[k] == v for k, v in expected.items()):
            return stats
        await asyncio.sleep(0.02)
    raise AssertionError(f"stats never reached {expected}: {stats}")


async def test_echo_shows_raw_path_query_headers_and_body(backend_url):
    async with aiohttp.ClientSession() as s:
        async with s.post(backend_url + "/_test/echo/v1/a%2Fb?q=%20x&q=2", data=b'{"k": 1}',
                          headers={"X-Custom": "one", "Authorization": "Bearer t"}) as r:
            echoed = await r.json()
        async with s.get(backend_url + "/_test/last") as r:
            last = await r.json()
    assert echoed["method"] == "POST" and echoed["path"] == "/_test/echo/v1/a%2Fb"
    assert echoed["query"] == "q=%20x&q=2" and echoed["body"] == '{"k": 1}'
    assert echoed["headers"]["x-custom"] == "one" and echoed["headers"]["authorization"] == "Bearer t"
    assert ["X-Custom", "one"] in echoed["raw_headers"]
    assert last == echoed


async def test_echo_can_set_response_headers_and_status(backend_url):
    async with aiohttp.ClientSession() as s:
        async with s.get(backend_url + "/_test/echo?status=418&respond_header=X-A:%201") as r:
            assert r.status == 418 and r.headers["X-A"] == "1"


async def test_stall_never_answers_and_disconnect_is_counted(backend_url):
    async with aiohttp.ClientSession() as s:
        with pytest.raises(asyncio.TimeoutError):
            async with s.post(backend_url + "/_test/stall", data=b"x",
                              timeout=aiohttp.ClientTimeout(total=0.3)):
                pass
        await _wait_for(s, backend_url, started=1, cancelled=1, in_flight=0)


async def test_stall_body_sends_headers_and_one_chunk(backend_url):
    async with aiohttp.ClientSession() as s:
        async with s.post(backend_url + "/_test/stall_body") as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            first = await r.content.readuntil(b"\n\n")
            assert first.startswith(b"data: {") and b"chat.completion.chunk" in first
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(r.content.read(1), 0.3)
        await _wait_for(s, backend_url, cancelled=1, in_flight=0)


async def test_client_leaving_mid_stream_cancels_the_handler(backend_url):
    async with aiohttp.ClientSession() as s:
        headers = {"X-Fake-Delay-Ms": "50", "X-Fake-Chunks": "40"}
        async with s.post(backend_url + "/v1/chat/completions", json={"stream": True}, headers=headers) as r:
            await r.content.readuntil(b"\n\n")
            r.close()  # drop the connection mid-stream
        await _wait_for(s, backend_url, started=1, completed=0, cancelled=1)
        async with s.post(backend_url + "/v1/chat/completions", json={"stream": True}) as r:
            assert (await r.read()).endswith(b"data: [DONE]\n\n")
        await _wait_for(s, backend_url, started=2, completed=1, cancelled=1)
        async with s.post(backend_url + "/_test/reset") as r:
            assert (await r.json())["started"] == 0


async def test_stall_after_knob_holds_a_real_stream_idle(backend_url):
    async with aiohttp.ClientSession() as s:
        stall = {"X-Fake-Stall-After": "2"}
        async with s.post(backend_url + "/v1/messages", json={"stream": True}, headers=stall) as r:
            got = await r.content.readuntil(b"\n\n") + await r.content.readuntil(b"\n\n")
            assert got.startswith(b"event: message_start") and b"event: ping" in got
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(r.content.read(1), 0.3)


async def test_controls_absent_by_default():
    from gateway.devtools.backend import run_backend
    runner, url = await run_backend()
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/_test/stats") as r:
            assert r.status == 404
    finally:
        await runner.cleanup()


async def test_cli_prints_ready_and_serves():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.devtools.backend", "--port", "0", "--chunks", "5", "--precompute",
        stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert line.startswith("READY http://127.0.0.1:")
        async with aiohttp.ClientSession() as s:
            async with s.post(line.split()[1] + "/v1/chat/completions", json={"stream": True}) as r:
                body = await r.read()
        assert body.count(b"\n\n") == 1 + 5 + 1 + 1  # role, 5 deltas, finish, [DONE]
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 5) == 0
