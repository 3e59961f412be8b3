"""`reasoning: drop`: the ReasoningDropper removes every trace of reasoning and the official SDKs still parse the rest.

Checked three ways: on the hand-written wire samples (exact output), under any chunking of the byte stream
(property test: the output never depends on where the bytes were cut), and end to end with the openai and
anthropic SDKs reading the fake backend through a tiny in-test proxy that applies codec + dropper.
"""
from __future__ import annotations

import copy
import json
import random

import anthropic
import httpx2 as httpx
import openai
import pytest
from aiohttp import ClientSession, web
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devtools import anthropic_wire, openai_wire
from gateway.devtools.backend import BackendOptions, run_backend
from gateway.devtools.scripts import DEFAULT_CONTENT, make_script
from gateway.dialects import codec_for
from gateway.dialects.base import REASONING, Event
from gateway.dialects.reasoning import ReasoningDropper
from gateway.dialects.sse import SseDecoder
from tests.dialects import dialect_samples as s
from tests.dialects.test_extractor_fuzz import payloads

CHAT, RESPONSES, MESSAGES = "/v1/chat/completions", "/v1/responses", "/v1/messages"
SSE, JSON = "text/event-stream", "application/json"
# A reasoning text whose every 27-character window contains the marker, so no piece of it can hide.
MARK = "zqxv"
REASONING_TEXT = f"Thinking {MARK} about it, carefully. " * 8
TOOL = ("lookup", {"type": "object", "properties": {"id": {"type": "string"}}})


def drop(path: str, chunks: list[bytes], content_type: str = SSE) -> tuple[bytes, list[Event]]:
    """Run ``chunks`` through codec + dropper as a proxy would; the bytes sent and the events passed on."""
    codec = codec_for(path, content_type)
    dropper = ReasoningDropper(codec.dialect, streaming=content_type == SSE)
    out, events = [], []
    for batch in s.decode_chunks(codec, chunks):
        kept = dropper.process(batch)
        events += kept
        out.append(codec.encode(kept))
    return b"".join(out), events


def assert_clean(body: bytes, events: list[Event], *secrets: bytes) -> None:
    assert not [d for e in events for d in e.deltas if d.channel == REASONING]
    assert not [e for e in events if e.dropped]
    for secret in secrets:
        assert secret not in body, secret


def sse_payloads(body: bytes) -> list[dict]:
    decoder = SseDecoder()
    return [json.loads(e.data) for e in decoder.feed(body) + decoder.close() if e.data and e.data[0] == "{"]


# --- The wire samples ---------------------------------------------------------------------------------------------

def test_chat_stream_drops_reasoning_only_chunks_and_keys():
    body, events = drop(CHAT, [s.CHAT_REASONING_STREAM])
    assert_clean(body, events, b"reasoning_content", b"rene@example.com", b"summary")
    assert s.texts_by_key(events) == {"content:0": s.CHAT_REASONING_TEXTS["content:0"]}
    chunks = sse_payloads(body)
    # The role chunk stays (its reasoning key gone), the three reasoning-only chunks go, usage stays untouched.
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert len(chunks) == 4 and chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 28}
    assert events[0].raw == b": keep-alive\n\n" and not events[0].dirty and body.endswith(b"data: [DONE]\n\n")


def test_chat_stream_two_choices_keeps_roles_and_answers():
    body, events = drop(CHAT, [s.CHAT_TWO_CHOICES_STREAM])
    assert_clean(body, events, b"Plan A", b"Plan B", b'"reasoning"')
    assert s.texts_by_key(events) == {"content:0": "First", "content:1": "Second"}
    assert [c["delta"] for c in sse_payloads(body)[0]["choices"]] == [{"role": "assistant"}] * 2


def test_chat_stream_without_reasoning_passes_byte_exact():
    body, events = drop(CHAT, [s.CHAT_TOOLS_STREAM])
    assert body == s.CHAT_TOOLS_STREAM and not any(e.dirty for e in events)


def _chunk(choices, usage=None) -> bytes:
    payload = {"id": "c", "object": "chat.completion.chunk", "choices": choices}
    if usage is not None:
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n".encode()


def test_chat_chunk_rules_first_appearance_finish_usage_logprobs_details():
    stream = b"".join([
        # choice 0 appears for the first time with reasoning only: kept (the SDK appends choices by first sight)
        _chunk([{"index": 0, "delta": {"reasoning": "secret-a"}, "finish_reason": None}]),
        # later reasoning-only chunk with logprobs of the reasoning tokens: dropped
        _chunk([{"index": 0, "delta": {"reasoning_details": [{"type": "reasoning.text", "text": "secret-b"}]},
                 "logprobs": {"content": [{"token": "secret-c"}]}, "finish_reason": None}]),
        # choice 1 first seen here: the chunk stays, choice 1's logprobs (reasoning tokens) go
        _chunk([{"index": 1, "delta": {"reasoning_content": "secret-d", "content": ""},
                 "logprobs": {"content": [{"token": "secret-e"}]}, "finish_reason": None}]),
        _chunk([{"index": 0, "delta": {"content": "A", "reasoning_content": None}, "finish_reason": None}]),
        # finish_reason and usage keep their chunks
        _chunk([{"index": 1, "delta": {"reasoning_content": "secret-f"}, "finish_reason": "stop"}]),
        _chunk([{"index": 0, "delta": {"reasoning_content": "secret-g"}, "finish_reason": None}], usage={"x": 1}),
        b"data: [DONE]\n\n",
    ])
    body, events = drop(CHAT, [stream])
    assert_clean(body, events, b"secret", b"reasoning")
    chunks = sse_payloads(body)
    assert [c["choices"][0]["delta"] for c in chunks] == [{}, {"content": ""}, {"content": "A"}, {}, {}]
    assert chunks[1]["choices"][0]["logprobs"] is None
    assert chunks[3]["choices"][0]["finish_reason"] == "stop" and chunks[4]["usage"] == {"x": 1}


def test_responses_stream_drops_the_reasoning_item_and_renumbers():
    body, events = drop(RESPONSES, [s.RESPONSES_STREAM])
    assert_clean(body, events, b"Checking", b"rs_1", b"summary_text", b'"type":"reasoning"')
    assert s.texts_by_key(events) == {
        "content:0:0": "Open 9–5.", "content:0:0:full": "Open 9–5." * 2,
        "tool_args:1": '{"at":"9am"}', "tool_args:1:full": '{"at":"9am"}' * 2,
    }
    payloads_ = sse_payloads(body)
    assert [p["output_index"] for p in payloads_ if "output_index" in p] == [0, 0, 0, 0, 1, 1, 1]
    # sequence_number is the upstream's resume cursor: kept as sent, gaps and all.
    assert [p["sequence_number"] for p in payloads_] == [0, *range(6, 14)]
    assert [i["id"] for i in payloads_[-1]["response"]["output"]] == ["msg_2", "fc_3"]
    assert not events[0].dirty  # response.created had nothing to remove: byte-exact


def test_responses_stream_reasoning_text_parts_and_legacy_events():
    ev = [
        {"type": "response.created", "response": {"id": "r", "output": [{"type": "reasoning", "id": "rs"}]}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs"}},
        {"type": "response.content_part.added", "output_index": 0, "content_index": 0,
         "part": {"type": "reasoning_text", "text": ""}},
        {"type": "response.reasoning_text.delta", "output_index": 0, "content_index": 0, "delta": "secret-1"},
        {"type": "response.reasoning_summary.delta", "output_index": 0, "delta": "secret-2"},  # legacy name
        {"type": "response.content_part.done", "output_index": 0, "content_index": 0,
         "part": {"type": "reasoning_text", "text": "secret-3"}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"type": "reasoning", "id": "rs", "content": [{"type": "reasoning_text", "text": "secret-4"}]}},
        {"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "m"}},
        {"type": "response.output_item.added", "output_index": 2, "item": {"type": "reasoning", "id": "rs2"}},
        {"type": "response.output_item.added", "output_index": 3, "item": {"type": "message", "id": "m2"}},
        {"type": "response.incomplete", "response": {"id": "r", "output": [
            {"type": "reasoning", "summary": [{"text": "secret-5"}]}, {"type": "message", "id": "m"}]}},
    ]
    stream = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in ev)
    body, events = drop(RESPONSES, [stream])
    assert_clean(body, events, b"secret", b"reasoning")
    out = sse_payloads(body)
    assert [(p["type"], p.get("output_index")) for p in out] == [
        ("response.created", None), ("response.output_item.added", 0), ("response.output_item.added", 1),
        ("response.incomplete", None)]
    assert out[0]["response"]["output"] == [] and out[-1]["response"]["output"] == [{"type": "message", "id": "m"}]


def test_anthropic_stream_drops_thinking_blocks_and_renumbers():
    body, events = drop(MESSAGES, [s.ANTHROPIC_STREAM])
    assert_clean(body, events, b"4111", b"thinking", b"EqQBCgIYAhIM1gbcDa")
    assert s.texts_by_key(events) == {"content:block0": "I'll look that up 🚀", "tool_args:block1": '{"q": "card"}'}
    indexes = [p["index"] for p in sse_payloads(body) if "index" in p]
    assert indexes == [0, 0, 0, 1, 1, 1, 1, 1]
    by_type = {e.payload["type"]: e for e in events}
    assert not by_type["message_start"].dirty and not by_type["message_stop"].dirty
    # closes were rebuilt for the new indexes
    stops = [e for e in events if e.payload and e.payload["type"] == "content_block_stop"]
    assert [e.closes[0] for e in stops] == ["content:block0", "content:block1"]


def test_anthropic_redacted_thinking_between_text_blocks():
    def ev(kind, **fields):
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()

    stream = b"".join([
        ev("message_start", message={"id": "m", "content": [{"type": "thinking", "thinking": "secret-0"}]}),
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "one"}),
        ev("content_block_stop", index=0),
        ev("content_block_start", index=1, content_block={"type": "redacted_thinking", "data": "secret-1"}),
        ev("content_block_stop", index=1),
        ev("content_block_delta", index=7, delta={"type": "thinking_delta", "thinking": "secret-2"}),  # stray
        ev("content_block_start", index=2, content_block={"type": "text", "text": "two"}),
        ev("content_block_stop", index=2),
        ev("message_stop"),
    ])
    body, events = drop(MESSAGES, [stream])
    assert_clean(body, events, b"secret", b"thinking")
    out = sse_payloads(body)
    assert out[0]["message"]["content"] == []
    assert [(p["type"], p.get("index")) for p in out[1:]] == [
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_stop", 1), ("message_stop", None)]


@pytest.mark.parametrize("path, body, secrets", [
    (CHAT, s.CHAT_BODY, [b"Compute 6", b"reasoning"]),
    (RESPONSES, s.RESPONSES_BODY, [b"Think", b"Deep", b"rs_1"]),
    (MESSAGES, s.ANTHROPIC_BODY, [b"User is bob", b"Ery1", b"EmwKAhgB", b"thinking"]),
])
def test_whole_bodies(path, body, secrets):
    out, events = drop(path, [body[:7], body[7:]], JSON)
    assert_clean(out, events, *secrets)
    kinds = {CHAT: lambda p: [c["message"]["content"] for c in p["choices"]],
             RESPONSES: lambda p: [i["type"] for i in p["output"]],
             MESSAGES: lambda p: [b["type"] for b in p["content"]]}[path](json.loads(out))
    assert kinds == {CHAT: ["The answer is 42.", [{"type": "text", "text": "Also 42."}]],
                     RESPONSES: ["message", "function_call"], MESSAGES: ["text", "tool_use"]}[path]


def test_opaque_empty_calls_and_unknown_dialects():
    codec = codec_for("/v2/other", "text/plain")
    events = codec.decode(b"reasoning: anything", True)
    assert ReasoningDropper("opaque", streaming=True).process(events) is events and not events[0].dirty
    for dialect in ("openai_chat", "openai_responses", "anthropic_messages"):
        assert ReasoningDropper(dialect, streaming=True).process([]) == []
    with pytest.raises(ValueError):
        ReasoningDropper("gemini", streaming=True)


def test_safety_net_removes_reasoning_in_shapes_no_rule_knows():
    # A message item carrying a `summary` (no real API does this): the extractor calls it reasoning, so it goes.
    item = {"type": "message", "id": "m", "content": [], "summary": [{"type": "summary_text", "text": "secret"}]}
    stream = f"data: {json.dumps({'type': 'response.output_item.done', 'output_index': 0, 'item': item})}\n\n"
    body, events = drop(RESPONSES, [stream.encode()])
    assert_clean(body, events, b"secret")
    assert sse_payloads(body)[0]["item"]["summary"] == [{"type": "summary_text"}]


@settings(max_examples=300, deadline=None)
@given(payloads())
def test_odd_payloads_never_raise_and_leave_no_reasoning(payload):
    for dialect in ("openai_chat", "openai_responses", "anthropic_messages"):
        for streaming in (True, False):
            codec_path = {"openai_chat": CHAT, "openai_responses": RESPONSES, "anthropic_messages": MESSAGES}
            codec = codec_for(codec_path[dialect], SSE if streaming else JSON)
            data = json.dumps(copy.deepcopy(payload)).encode()
            raw = b"data: " + data + b"\n\n" if streaming else data
            events = ReasoningDropper(dialect, streaming).process(codec.decode(raw, True))
            assert not [d for e in events for d in e.deltas if d.channel == REASONING]
            codec.encode(events)


# --- Any chunking gives the same result ---------------------------------------------------------------------------

def _rendered(kind: str, tool: bool) -> bytes:
    script = make_script(12, reasoning=REASONING_TEXT, tool=TOOL if tool else None)
    frames = {CHAT: lambda: openai_wire.chat_chunks(script, "m", True),
              RESPONSES: lambda: openai_wire.response_events(script, "m"),
              MESSAGES: lambda: anthropic_wire.message_events(script, "m")}[kind]()
    return b"".join(frames)


STREAMS = [
    (CHAT, s.CHAT_REASONING_STREAM), (CHAT, s.CHAT_TWO_CHOICES_STREAM), (CHAT, s.CHAT_TOOLS_STREAM),
    (RESPONSES, s.RESPONSES_STREAM), (MESSAGES, s.ANTHROPIC_STREAM),
    *[(kind, _rendered(kind, tool)) for kind in (CHAT, RESPONSES, MESSAGES) for tool in (False, True)],
]
WHOLE = {(path, stream): drop(path, [stream])[0] for path, stream in STREAMS}


@pytest.mark.parametrize("path, stream", STREAMS, ids=[f"{p.rsplit('/')[-1]}-{i}" for i, (p, _) in enumerate(STREAMS)])
@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 1 << 20), max_size=40))
def test_any_chunking_gives_the_same_output(path, stream, cuts):
    body, events = drop(path, s.split_at(stream, [c % (len(stream) + 1) for c in cuts]))
    assert body == WHOLE[path, stream]
    assert_clean(body, events, MARK.encode())


def test_byte_by_byte_and_rendered_streams_are_clean():
    for path, stream in STREAMS:
        if MARK.encode() in stream:
            body, events = drop(path, [stream[i:i + 1] for i in range(len(stream))])
            assert body == WHOLE[path, stream]
            assert_clean(body, events, MARK.encode(), b"reasoning_content", b'"type":"reasoning"', b"thinking")


# --- The official SDKs parse the result ---------------------------------------------------------------------------

def _mock_client(path: str, stream: bytes) -> httpx.Client:
    body, _ = drop(path, [stream])
    return httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": SSE}, content=body)))


def test_sdks_parse_the_processed_samples():
    oai = openai.OpenAI(base_url="http://up/v1", api_key="k", http_client=_mock_client(CHAT, s.CHAT_TWO_CHOICES_STREAM))
    with oai.chat.completions.stream(model="m", messages=[]) as stream:
        final = stream.get_final_completion()
    assert [c.message.content for c in final.choices] == ["First", "Second"]
    assert not any("reasoning" in (c.message.model_extra or {}) for c in final.choices)

    oai = openai.OpenAI(base_url="http://up/v1", api_key="k", http_client=_mock_client(RESPONSES, s.RESPONSES_STREAM))
    # The sample has no content_part.added, which the SDK's accumulator needs: read it raw (typed events).
    events = list(oai.responses.create(model="m", input="x", stream=True))
    assert [e.output_index for e in events if e.type == "response.output_item.added"] == [0, 1]
    final = events[-1].response
    assert [o.type for o in final.output] == ["message", "function_call"] and final.output_text == "Open 9–5."

    claude = anthropic.Anthropic(base_url="http://up", api_key="k",
                                 http_client=_mock_client(MESSAGES, s.ANTHROPIC_STREAM))
    with claude.messages.stream(model="c", max_tokens=8, messages=[]) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "I'll look that up 🚀" and message.content[1].input == {"q": "card"}


@pytest.fixture
async def proxy():
    """The fake backend behind a tiny proxy that applies codec + dropper, re-cutting every upstream chunk at
    random offsets. Yields (base URL, the bytes sent to the client per request)."""
    runner, upstream = await run_backend(options=BackendOptions(chunks=12, reasoning=REASONING_TEXT))
    session = ClientSession()
    sent: list[bytes] = []
    rng = random.Random(7)

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-fake-")}
        headers["Content-Type"] = "application/json"
        async with session.post(upstream + request.path_qs, data=await request.read(), headers=headers) as up:
            content_type = up.headers.get("Content-Type", "")
            codec = codec_for(request.path, content_type)
            dropper = ReasoningDropper(codec.dialect, streaming=content_type.startswith(SSE))
            response = web.StreamResponse(status=up.status, headers={"Content-Type": content_type})
            await response.prepare(request)
            out = []
            async for chunk in up.content.iter_any():
                for piece in s.split_at(chunk, [rng.randrange(len(chunk) + 1) for _ in range(rng.randrange(3))]):
                    out.append(codec.encode(dropper.process(codec.decode(piece, False))))
                    await response.write(out[-1])
            out.append(codec.encode(dropper.process(codec.decode(b"", True))))
            await response.write(out[-1])
            sent.append(b"".join(out))
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    proxy_runner = web.AppRunner(app, access_log=None)
    await proxy_runner.setup()
    site = web.TCPSite(proxy_runner, "127.0.0.1", 0)
    await site.start()
    host, port = proxy_runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", sent
    finally:
        await proxy_runner.cleanup()
        await session.close()
        await runner.cleanup()


def _assert_sent_clean(sent: list[bytes]) -> None:
    assert sent
    for body in sent:
        assert MARK.encode() not in body and b"reasoning_content" not in body and b"thinking" not in body
        assert b'"type":"reasoning"' not in body


async def test_openai_chat_sdk_through_the_dropping_proxy(proxy):
    url, sent = proxy
    oai = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    raw = await oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}], stream=True,
                                            stream_options={"include_usage": True})
    chunks = [chunk async for chunk in raw]
    assert not any("reasoning_content" in (c.delta.model_extra or {}) for ch in chunks for c in ch.choices)
    assert "".join(c.delta.content or "" for ch in chunks for c in ch.choices) == DEFAULT_CONTENT
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens > 0  # counts are not reasoning text

    tools = [{"type": "function", "function": {"name": TOOL[0], "parameters": TOOL[1]}}]
    async with oai.chat.completions.stream(model="m", messages=[{"role": "user", "content": "q"}],
                                           tools=tools) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"id":"sample id"}'
    assert "reasoning_content" not in (final.choices[0].message.model_extra or {})

    completion = await oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert completion.choices[0].message.content == DEFAULT_CONTENT
    assert "reasoning_content" not in (completion.choices[0].message.model_extra or {})
    _assert_sent_clean(sent)


async def test_openai_responses_sdk_through_the_dropping_proxy(proxy):
    url, sent = proxy
    oai = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    async with oai.responses.stream(model="m", input="q") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert [o.type for o in final.output] == ["message"] and final.output_text == DEFAULT_CONTENT
    assert not [k for k in kinds if "reasoning" in k] and kinds[-1] == "response.completed"

    raw = await oai.responses.create(model="m", input="q", stream=True)
    events = [e async for e in raw]
    assert {e.output_index for e in events if hasattr(e, "output_index")} == {0}
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_CONTENT

    tools = [{"type": "function", "name": TOOL[0], "parameters": TOOL[1]}]
    async with oai.responses.stream(model="m", input="q", tools=tools) as stream:
        final = await stream.get_final_response()
    assert [o.type for o in final.output] == ["function_call"] and final.output[0].arguments == '{"id":"sample id"}'

    response = await oai.responses.create(model="m", input="q")
    assert [o.type for o in response.output] == ["message"] and response.output_text == DEFAULT_CONTENT
    _assert_sent_clean(sent)


async def test_anthropic_sdk_through_the_dropping_proxy(proxy):
    url, sent = proxy
    claude = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
    kwargs = dict(model="c", max_tokens=1024, messages=[{"role": "user", "content": "q"}],
                  thinking={"type": "enabled", "budget_tokens": 1024})
    async with claude.messages.stream(**kwargs) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["text"] and final.content[0].text == DEFAULT_CONTENT
    assert "thinking" not in kinds and "signature" not in kinds and final.stop_reason == "end_turn"

    tools = [{"name": TOOL[0], "input_schema": TOOL[1]}]
    async with claude.messages.stream(**kwargs, tools=tools) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["tool_use"] and final.content[0].input == {"id": "sample id"}

    message = await claude.messages.create(**kwargs)
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == DEFAULT_CONTENT
    _assert_sent_clean(sent)
