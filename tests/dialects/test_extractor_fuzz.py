"""Extractors see whatever upstreams and clients send: odd shapes must never raise, and every path must be true."""
from __future__ import annotations

import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dialects import anthropic, openai_chat, openai_responses
from gateway.dialects.base import Event
from gateway.dialects.edit import set_delta_text
from gateway.dialects.requests import request_texts, set_request_text
from gateway.dialects.sse import SseDecoder
from tests.dialects import dialect_samples as s

KEYS = [
    "choices", "delta", "message", "content", "reasoning_content", "reasoning", "reasoning_details", "tool_calls",
    "function", "function_call", "arguments", "index", "type", "text", "refusal", "summary", "output", "item",
    "part", "response", "output_index", "content_index", "summary_index", "content_block", "thinking",
    "partial_json", "input", "messages", "system", "instructions", "role",
]
TYPES = [
    "text", "thinking", "tool_use", "tool_result", "text_delta", "thinking_delta", "input_json_delta",
    "content_block_delta", "content_block_start", "message", "reasoning", "function_call", "reasoning_text",
    "response.output_text.delta", "response.output_text.done", "response.completed", "response.output_item.done",
    "response.content_part.done", "response.reasoning_summary_part.added", "response.function_call_arguments.done",
]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.text(max_size=5), st.sampled_from(TYPES))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=30,
)


def _sample_payloads() -> list[dict]:
    """Every JSON object in the wire samples: realistic shapes for the mutations below to break."""
    out = []
    for stream in (s.CHAT_REASONING_STREAM, s.CHAT_TOOLS_STREAM, s.CHAT_TWO_CHOICES_STREAM, s.RESPONSES_STREAM,
                   s.ANTHROPIC_STREAM):
        decoder = SseDecoder()
        for event in decoder.feed(stream) + decoder.close():
            if event.data and event.data.startswith("{"):
                out.append(json.loads(event.data))
    return out + [json.loads(body) for body in (s.CHAT_BODY, s.RESPONSES_BODY, s.ANTHROPIC_BODY)]


SAMPLES = _sample_payloads()
REQUESTS = {"/v1/chat/completions": s.CHAT_REQUEST, "/v1/responses": s.RESPONSES_REQUEST,
            "/v1/messages": s.ANTHROPIC_REQUEST}


@st.composite
def payloads(draw, samples=SAMPLES):
    """A real payload with a few subtrees replaced by random JSON (wrong types, missing parts, odd indexes)."""
    payload = copy.deepcopy(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(0, 4))):
        node = payload
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, (dict, list)) and draw(st.integers(0, 2)):
                node = child
                continue
            node[key] = draw(json_values)
            break
    return payload

EXTRACTORS = [
    openai_chat.extract_chunk, openai_chat.extract_body, openai_responses.extract_event,
    openai_responses.extract_body, anthropic.extract_event, anthropic.extract_body,
]


def value_at(root, path):
    for key in path:
        root = root[key]
    return root


@settings(max_examples=500, deadline=None)
@given(payloads())
def test_extractors_never_raise_and_paths_lead_to_the_text(payload):
    for extract in EXTRACTORS:
        mine = copy.deepcopy(payload)
        deltas = extract(mine, None)
        for delta in deltas:
            assert delta.text and delta.path and delta.stream_key.startswith(delta.channel + ":")
            value = value_at(mine, delta.path)
            assert value == delta.text or json.dumps(value, ensure_ascii=False) == delta.text
        event = Event(raw=b"", deltas=deltas, payload=mine)
        for delta in list(deltas):
            set_delta_text(event, delta, "[X]")
            assert value_at(mine, delta.path) == "[X]"
        json.dumps(mine)  # still serialisable


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_request_texts_never_raise(data):
    path = data.draw(st.sampled_from(sorted(REQUESTS)))
    body = data.draw(payloads([REQUESTS[path]]))
    for delta in request_texts(path, body):
        assert delta.text
        set_request_text(body, delta, "[Y]")
        assert value_at(body, delta.path) == "[Y]"
