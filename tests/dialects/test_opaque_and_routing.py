"""Opaque bodies (incremental UTF-8) and the choice of codec from path and content type."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dialects import codec_for, dialect_name_for
from gateway.dialects.base import TEXT
from gateway.dialects.edit import set_delta_text
from gateway.dialects.framing import JsonBodyCodec, SseCodec
from gateway.dialects.opaque import OpaqueCodec, incomplete_utf8_tail
from tests.dialects.dialect_samples import decode_chunks, split_at

TEXT_BODY = "Grüße from Zoë: ключ sk-live-4242 ✓ 😀 end".encode()


def opaque_events(chunks):
    codec = OpaqueCodec()
    return codec, [e for batch in decode_chunks(codec, chunks) for e in batch]


def test_split_inside_every_multibyte_character():
    for cut in range(len(TEXT_BODY) + 1):
        codec, events = opaque_events([TEXT_BODY[:cut], TEXT_BODY[cut:]])
        assert "".join(d.text for e in events for d in e.deltas) == TEXT_BODY.decode()
        for event in events:  # each event's raw is exactly the bytes of its text
            assert event.raw.decode("utf-8") == event.deltas[0].text
            assert event.deltas[0].channel == TEXT and event.deltas[0].path == ()
        assert codec.encode(events) == TEXT_BODY


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.data())
def test_any_chunking_keeps_text_and_bytes(text, data):
    body = text.encode()
    chunks = split_at(body, data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    codec, events = opaque_events(chunks)
    assert "".join(e.deltas[0].text for e in events) == text
    assert codec.encode(events) == body


def test_undecodable_bytes_pass_raw_and_a_dangling_tail_is_replaced_at_the_end():
    body = b"ok \xff\xfe then \xe2\x82"  # invalid bytes, then an unfinished euro sign at the very end
    codec, events = opaque_events([body[:5], body[5:]])
    assert "".join(e.deltas[0].text for e in events) == "ok \ufffd\ufffd then \ufffd"
    assert codec.encode(events) == body


def test_rewritten_opaque_event_is_its_new_text():
    codec, (first, second) = opaque_events([b"call 555-0100 ", b"now"])
    set_delta_text(first, first.deltas[0], "call [PHONE] ")
    assert codec.encode([first, second]) == b"call [PHONE] now"


def test_incomplete_utf8_tail():
    euro = "€".encode()
    assert [incomplete_utf8_tail(b"a" + euro[:n]) for n in range(4)] == [0, 1, 2, 0]
    emoji = "😀".encode()
    assert [incomplete_utf8_tail(emoji[:n]) for n in range(5)] == [0, 1, 2, 3, 0]
    assert incomplete_utf8_tail(b"\x80\x80\x80") == 0 and incomplete_utf8_tail(b"\xc0") == 0


@pytest.mark.parametrize(
    ("path", "content_type", "dialect", "kind"),
    [
        ("/v1/chat/completions", "text/event-stream; charset=utf-8", "openai_chat", SseCodec),
        ("/v1/chat/completions?api-version=1", "application/json", "openai_chat", JsonBodyCodec),
        ("/v1/responses", "text/event-stream", "openai_responses", SseCodec),
        ("/v1/responses/resp_123", "Application/JSON", "openai_responses", JsonBodyCodec),
        ("/v1/messages", "text/event-stream", "anthropic_messages", SseCodec),
        ("/v1/messages?beta=true", "application/json", "anthropic_messages", JsonBodyCodec),
        ("/v1/messagesX", "application/json", "opaque", OpaqueCodec),
        ("/v1/models", "application/json", "opaque", OpaqueCodec),
        ("/v1/chat/completions", "text/plain", "openai_chat", OpaqueCodec),
        ("/v1/chat/completions", "", "openai_chat", OpaqueCodec),
    ],
)
def test_codec_for(path, content_type, dialect, kind):
    codec = codec_for(path, content_type)
    assert type(codec) is kind
    assert dialect_name_for(path) == dialect
    assert codec.dialect == (dialect if kind is not OpaqueCodec else "opaque")


def test_codecs_are_fresh_per_response():
    first = codec_for("/v1/messages", "text/event-stream")
    assert first.decode(b"data: {", False) == []
    second = codec_for("/v1/messages", "text/event-stream")
    assert second.decode(b'data: {"type":"ping"}\n\n', False)[0].payload == {"type": "ping"}
