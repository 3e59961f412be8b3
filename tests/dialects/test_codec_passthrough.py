"""Untouched responses go out byte for byte, however they were chunked, and the codecs find every text in them."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dialects import codec_for
from gateway.dialects.base import CONTENT, REASONING, TOOL_ARGS
from tests.dialects import dialect_samples as s

STREAMS = {
    "chat_reasoning": ("/v1/chat/completions", s.CHAT_REASONING_STREAM, s.CHAT_REASONING_TEXTS),
    "chat_tools_crlf": ("/v1/chat/completions", s.CHAT_TOOLS_STREAM, s.CHAT_TOOLS_TEXTS),
    "chat_two_choices": ("/v1/chat/completions", s.CHAT_TWO_CHOICES_STREAM, s.CHAT_TWO_CHOICES_TEXTS),
    "responses": ("/v1/responses", s.RESPONSES_STREAM, s.RESPONSES_TEXTS),
    "anthropic": ("/v1/messages", s.ANTHROPIC_STREAM, s.ANTHROPIC_TEXTS),
}
BODIES = {
    "chat": ("/v1/chat/completions", s.CHAT_BODY),
    "responses": ("/v1/responses", s.RESPONSES_BODY),
    "anthropic": ("/v1/messages", s.ANTHROPIC_BODY),
}


def roundtrip(path: str, content_type: str, chunks: list[bytes]) -> tuple[bytes, list]:
    """Decode chunk by chunk and encode each batch right away, as the proxy does."""
    codec = codec_for(path, content_type)
    out, events = [], []
    for batch in s.decode_chunks(codec, chunks):
        events += batch
        out.append(codec.encode(batch))
    return b"".join(out), events


@pytest.mark.parametrize("name", STREAMS)
def test_stream_texts_per_stream_key(name):
    path, stream, expected = STREAMS[name]
    _, events = roundtrip(path, "text/event-stream", [stream])
    assert s.texts_by_key(events) == expected


@pytest.mark.parametrize("name", STREAMS)
def test_stream_fed_byte_by_byte_is_byte_identical(name):
    path, stream, expected = STREAMS[name]
    out, events = roundtrip(path, "text/event-stream", [stream[i:i + 1] for i in range(len(stream))])
    assert out == stream
    assert s.texts_by_key(events) == expected


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(STREAMS)), st.data())
def test_stream_any_chunking_is_byte_identical(name, data):
    path, stream, expected = STREAMS[name]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=25))
    out, events = roundtrip(path, "text/event-stream", s.split_at(stream, cuts))
    assert out == stream
    assert s.texts_by_key(events) == expected


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(BODIES)), st.data())
def test_json_body_any_chunking_is_byte_identical(name, data):
    path, body = BODIES[name]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    out, events = roundtrip(path, "application/json; charset=utf-8", s.split_at(body, cuts))
    assert out == body
    assert len(events) == 1 and events[0].raw == body


def test_stream_channels_and_paths_point_at_the_text():
    for path, stream, _ in STREAMS.values():
        _, events = roundtrip(path, "text/event-stream", [stream])
        for event in events:
            for delta in event.deltas:
                node = event.payload
                for key in delta.path:
                    node = node[key]
                assert node == delta.text
                assert delta.stream_key.split(":")[0] == delta.channel


def test_chat_done_and_keepalive_carry_no_deltas():
    _, events = roundtrip("/v1/chat/completions", "text/event-stream", [s.CHAT_REASONING_STREAM])
    assert events[0].raw == b": keep-alive\n\n" and events[0].deltas == [] and events[0].payload is None
    assert events[-1].raw == b"data: [DONE]\n\n" and events[-1].deltas == []
    # The opening chunk has reasoning_content "" and content null: no empty deltas.
    assert events[1].deltas == []


def test_chat_body_deltas():
    _, (event,) = roundtrip("/v1/chat/completions", "application/json", [s.CHAT_BODY])
    assert [(d.channel, d.text, d.stream_key) for d in event.deltas] == [
        (CONTENT, "The answer is 42.", "content:0"),
        (REASONING, "Compute 6\u00d77.", "reasoning:0"),
        (TOOL_ARGS, '{"expr":"6*7"}', "tool_args:0:0"),
        (CONTENT, "Also 42.", "content:1"),
    ]


def test_responses_body_deltas():
    _, (event,) = roundtrip("/v1/responses", "application/json", [s.RESPONSES_BODY])
    assert {(d.channel, d.text, d.stream_key) for d in event.deltas} == {
        (REASONING, "Think", "reasoning:0:summary0"),
        (REASONING, "Deep", "reasoning:0:0"),
        (CONTENT, "Hi", "content:1:0"),
        (TOOL_ARGS, "{}", "tool_args:2"),
    }


def test_anthropic_body_deltas():
    _, (event,) = roundtrip("/v1/messages", "application/json", [s.ANTHROPIC_BODY])
    assert [(d.channel, d.path, d.stream_key) for d in event.deltas] == [
        (REASONING, ("content", 0, "thinking"), "reasoning:block0"),
        (CONTENT, ("content", 2, "text"), "content:block2"),  # block 1 is redacted_thinking: nothing to read
        (TOOL_ARGS, ("content", 3, "input"), "tool_args:block3"),
    ]
    assert json.loads(event.deltas[2].text) == {"to": "bob@example.com", "n": 2}


def test_anthropic_block_start_with_initial_text_starts_the_stream():
    stream = (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":3,'
        b'"content_block":{"type":"text","text":"Hel"}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":3,'
        b'"delta":{"type":"text_delta","text":"lo"}}\n\n'
    )
    _, events = roundtrip("/v1/messages", "text/event-stream", [stream])
    assert s.texts_by_key(events) == {"content:block3": "Hello"}
