"""The official SDKs through the gateway, and byte-for-byte pass-through of what the backend sends."""
from __future__ import annotations

import json

import aiohttp
import anthropic
import openai
import pytest

from gateway.devtools.scripts import DEFAULT_CONTENT, DEFAULT_REASONING
from tests.e2e.helpers import HEX_ID, SESSION_ID, backend_last, backend_stats, sse_data, sse_frames
from tests.support import gateway_config, start_backend, start_gateway

MODEL = "fake-reasoner-1"
CLAUDE = "fake-claude-thinker"
PROMPT = [{"role": "user", "content": "Summarise last quarter's support tickets."}]
THINKING = {"type": "enabled", "budget_tokens": 1024}


def _openai(gateway: str, token: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key=token, max_retries=0, **kw)


def _async_openai(gateway: str, token: str, **kw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway + "/v1", api_key=token, max_retries=0, **kw)


def _assert_gateway_ids(headers) -> None:
    assert HEX_ID.match(headers["x-gateway-request-id"])
    assert headers["x-gateway-session-id"]


# --- OpenAI Chat Completions ------------------------------------------------------------------------------------

def test_openai_sync_chat_non_stream(gateway, backend, token):
    client = _openai(gateway, token)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=PROMPT)
    completion = raw.parse()
    message = completion.choices[0].message
    assert message.content == DEFAULT_CONTENT
    assert message.reasoning_content == DEFAULT_REASONING
    assert completion.choices[0].finish_reason == "stop"
    _assert_gateway_ids(raw.headers)


async def test_upstream_never_sees_the_sdk_api_key(gateway, backend, token):
    client = _async_openai(gateway, token)
    await client.chat.completions.create(model=MODEL, messages=PROMPT)
    seen = await backend_last(backend)
    assert seen is not None and seen["path"] == "/v1/chat/completions"
    assert "authorization" not in seen["headers"]
    assert token not in json.dumps(seen)
    assert json.loads(seen["body"])["messages"] == PROMPT


def test_openai_sync_chat_stream_carries_reasoning_content(gateway, token):
    client = _openai(gateway, token)
    chunks = list(client.chat.completions.create(model=MODEL, messages=PROMPT, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = [d.reasoning_content for d in deltas if getattr(d, "reasoning_content", None)]
    assert len(reasoning) > 1, "reasoning must arrive in several chunks, not one"
    assert "".join(reasoning) == DEFAULT_REASONING
    assert "".join(d.content or "" for d in deltas) == DEFAULT_CONTENT
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_openai_async_chat_non_stream_and_stream(gateway, token):
    client = _async_openai(gateway, token)
    completion = await client.chat.completions.create(model=MODEL, messages=PROMPT)
    assert completion.choices[0].message.content == DEFAULT_CONTENT
    assert completion.choices[0].message.reasoning_content == DEFAULT_REASONING

    stream = await client.chat.completions.create(
        model=MODEL, messages=PROMPT, stream=True, stream_options={"include_usage": True},
        extra_headers={"X-Fake-Chunks": "16"})
    reasoning, content, usage = [], [], None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
            content.append(choice.delta.content or "")
    assert "".join(reasoning) == DEFAULT_REASONING
    assert "".join(content) == DEFAULT_CONTENT
    assert sum(1 for r in reasoning if r) == 8  # X-Fake-Chunks reached the backend: half of 16 is reasoning
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens > 0


# --- OpenAI Responses API ---------------------------------------------------------------------------------------

def test_openai_sync_responses_stream(gateway, token):
    client = _openai(gateway, token)
    with client.responses.stream(model=MODEL, input="Summarise the tickets.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == DEFAULT_REASONING
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_CONTENT
    assert final.output_text == DEFAULT_CONTENT
    assert final.output[0].type == "reasoning"


async def test_openai_async_responses_stream(gateway, token):
    client = _async_openai(gateway, token)
    async with client.responses.stream(model=MODEL, input="Summarise the tickets.") as stream:
        summary = [e.delta async for e in stream if e.type == "response.reasoning_summary_text.delta"]
        final = await stream.get_final_response()
    assert len(summary) > 1 and "".join(summary) == DEFAULT_REASONING
    assert final.output_text == DEFAULT_CONTENT


# --- Anthropic Messages -----------------------------------------------------------------------------------------

def test_anthropic_messages_non_stream(gateway, token):
    client = anthropic.Anthropic(base_url=gateway, api_key=token, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=2048, messages=PROMPT, thinking=THINKING)
    message = raw.parse()
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == DEFAULT_REASONING
    assert message.content[0].signature
    assert message.content[1].text == DEFAULT_CONTENT
    assert message.stop_reason == "end_turn"
    _assert_gateway_ids(raw.headers)


def test_anthropic_messages_stream_with_thinking(gateway, token):
    client = anthropic.Anthropic(base_url=gateway, api_key=token, max_retries=0)
    with client.messages.stream(model=CLAUDE, max_tokens=2048, messages=PROMPT,
                                thinking=THINKING) as stream:
        events = list(stream)
        final = stream.get_final_message()
    thinking = [e.delta.thinking for e in events
                if e.type == "content_block_delta" and e.delta.type == "thinking_delta"]
    text = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert len(thinking) > 1 and "".join(thinking) == DEFAULT_REASONING
    assert "".join(text) == DEFAULT_CONTENT
    assert final.content[0].type == "thinking" and final.content[0].thinking == DEFAULT_REASONING
    assert final.content[0].signature
    assert final.content[1].text == DEFAULT_CONTENT


async def test_anthropic_async_stream(gateway, token):
    client = anthropic.AsyncAnthropic(base_url=gateway, api_key=token, max_retries=0)
    async with client.messages.stream(model=CLAUDE, max_tokens=2048, messages=PROMPT,
                                      thinking=THINKING) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[1].text == DEFAULT_CONTENT


# --- session and request ids ------------------------------------------------------------------------------------

def test_client_session_id_is_echoed_and_ids_are_per_request(gateway, token):
    client = _openai(gateway, token, default_headers={"X-Session-Id": "e2e-session:42"})
    first = client.models.with_raw_response.list()
    second = client.models.with_raw_response.list()
    assert first.headers["x-gateway-session-id"] == "e2e-session:42"
    assert second.headers["x-gateway-session-id"] == "e2e-session:42"
    assert first.headers["x-gateway-request-id"] != second.headers["x-gateway-request-id"]

    plain = _openai(gateway, token)
    a = plain.models.with_raw_response.list().headers["x-gateway-session-id"]
    b = plain.models.with_raw_response.list().headers["x-gateway-session-id"]
    assert SESSION_ID.match(a) and SESSION_ID.match(b) and a != b  # assigned by the gateway when the client sends none


@pytest.mark.parametrize("value", ["has space", "x" * 129, "semi;colon"])
async def test_invalid_session_id_is_refused_before_upstream(gateway, backend, http, auth, value):
    before = await backend_stats(backend)
    async with http.get(gateway + "/v1/models", headers={**auth, "X-Session-Id": value}) as resp:
        body = await resp.json()
        assert resp.status == 400
        assert body["error"]["code"] == "invalid_session_id"
        assert HEX_ID.match(resp.headers["X-Gateway-Request-Id"])
    assert (await backend_stats(backend))["started"] == before["started"]


def test_invalid_session_id_via_sdk_raises_bad_request(gateway, token):
    client = _openai(gateway, token, default_headers={"X-Session-Id": "not valid!"})
    with pytest.raises(openai.BadRequestError) as err:
        client.models.list()
    assert err.value.code == "invalid_session_id"


# --- byte-exact pass-through ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def det_backend():
    """A backend that renders each request shape once and replays the cached bytes (fixed ids and timestamps),
    so the same request gives the same bytes directly and through the gateway."""
    proc, url = start_backend("--precompute")
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def det_gateway(issuer, det_backend):
    proc, url = start_gateway(gateway_config(issuer.url, det_backend))
    yield url
    proc.stop()


ENDPOINTS = {
    "chat": ("/v1/chat/completions", {"model": MODEL, "messages": PROMPT, "stream": True,
                                      "stream_options": {"include_usage": True}}),
    "responses": ("/v1/responses", {"model": MODEL, "input": "Summarise the tickets.", "stream": True}),
    "messages": ("/v1/messages", {"model": CLAUDE, "max_tokens": 2048, "messages": PROMPT,
                                  "thinking": THINKING, "stream": True}),
}


async def _fetch(http: aiohttp.ClientSession, url: str, body: dict, headers: dict) -> tuple[int, str, bytes]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def _fetch_http_chunks(http: aiohttp.ClientSession, url: str, body: dict, headers: dict) -> list[bytes]:
    """The body as the HTTP/1.1 chunks it was sent in (aiohttp reports where each chunk ends)."""
    chunks, current = [], b""
    async with http.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200
        async for data, end_of_chunk in resp.content.iter_chunks():
            current += data
            if end_of_chunk and current:  # the zero-length last-chunk is framing, not data
                chunks.append(current)
                current = b""
    if current:
        chunks.append(current)
    return chunks


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_stream_bytes_identical_direct_and_through_gateway(det_backend, det_gateway, http, auth, endpoint):
    path, body = ENDPOINTS[endpoint]
    knobs = {"X-Fake-Chunks": "24"}
    direct = await _fetch(http, det_backend + path, body, knobs)
    again = await _fetch(http, det_backend + path, body, knobs)
    assert direct == again, "the precomputing backend must be deterministic for the comparison to mean anything"
    status, content_type, via = await _fetch(http, det_gateway + path, body, {**knobs, **auth})
    assert (status, content_type) == direct[:2] == (200, "text/event-stream; charset=utf-8")
    assert via == direct[2]
    assert len(sse_frames(via)) > 24
    if endpoint == "chat":
        assert sse_data(via)[-1] == "[DONE]"


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_non_stream_bytes_identical(det_backend, det_gateway, http, auth, endpoint):
    path, body = ENDPOINTS[endpoint]
    body = {**body, "stream": False}
    body.pop("stream_options", None)
    direct = await _fetch(http, det_backend + path, body, {})
    assert direct == await _fetch(http, det_backend + path, body, {})
    via = await _fetch(http, det_gateway + path, body, auth)
    assert via == direct and direct[0] == 200


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_event_boundaries_preserved(det_backend, det_gateway, http, auth, endpoint):
    """Paced frames: each SSE frame is its own HTTP chunk from the backend, and the gateway keeps that framing
    (it neither buffers several events into one write nor splits one)."""
    path, body = ENDPOINTS[endpoint]
    knobs = {"X-Fake-Chunks": "6", "X-Fake-Delay-Ms": "25"}
    direct = await _fetch_http_chunks(http, det_backend + path, body, knobs)
    via = await _fetch_http_chunks(http, det_gateway + path, body, {**knobs, **auth})
    assert all(c.endswith(b"\n\n") and c.count(b"\n\n") == 1 for c in direct), "backend framing changed"
    assert via == direct
