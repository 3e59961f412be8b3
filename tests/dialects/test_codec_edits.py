"""Changed events are re-serialised from their payload, keep their framing, and parse back to what was written."""
from __future__ import annotations

import json

from gateway.dialects import codec_for
from gateway.dialects.base import REASONING, TEXT, Delta, Event
from gateway.dialects.edit import remove_delta, set_delta_text
from gateway.dialects.sse import SseDecoder
from tests.dialects import dialect_samples as s

SSE = "text/event-stream"


def decode(path: str, content_type: str, body: bytes):
    codec = codec_for(path, content_type)
    return codec, codec.decode(body, True)


def sse_payloads(body: bytes) -> list:
    """Independent re-read of an encoded stream: the data of each event, parsed when it is JSON."""
    decoder = SseDecoder()
    out = []
    for event in decoder.feed(body) + decoder.close():
        try:
            out.append(json.loads(event.data))
        except (TypeError, ValueError):
            out.append(event.data)
    return out


def find(events, text: str):
    return next((e, d) for e in events for d in e.deltas if text in d.text)


def test_chat_edit_reserialises_only_the_changed_event():
    codec, events = decode("/v1/chat/completions", SSE, s.CHAT_REASONING_STREAM)
    before = sse_payloads(s.CHAT_REASONING_STREAM)
    event, delta = find(events, "rene@example.com")
    set_delta_text(event, delta, delta.text.replace("rene@example.com", "[EMAIL] \u00e9"))
    out = codec.encode(events)

    changed = events.index(event)
    expected = [e.raw for e in events]
    line = "data: " + json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False) + "\n\n"
    expected[changed] = line.encode()
    assert out == b"".join(expected)  # every other event is its original bytes

    after = sse_payloads(out)
    before[changed]["choices"][0]["delta"]["reasoning_content"] = "[EMAIL] \u00e9 \U0001f600 and"
    assert after == before  # unknown/extra fields (system_fingerprint, logprobs) survive
    _, reread = decode("/v1/chat/completions", SSE, out)
    assert s.texts_by_key(reread)["reasoning:0"] == 'The user René wrote from [EMAIL] é 😀 and wants a "summary".\n'


def test_edit_keeps_crlf_and_the_event_line_first():
    codec, events = decode("/v1/chat/completions", SSE, s.CHAT_TOOLS_STREAM)
    event, delta = find(events, "Z\u00fcr")
    set_delta_text(event, delta, '{"city": "[CITY]')
    out = codec.encode([event])
    assert out.startswith(b"data: {") and out.endswith(b"}\r\n\r\n") and out.count(b"\r\n") == 2

    codec, events = decode("/v1/messages", SSE, s.ANTHROPIC_STREAM)
    event, delta = find(events, "4111")
    set_delta_text(event, delta, "Card [CARD]")
    out = codec.encode([event])
    assert out == (
        b'event: content_block_delta\n'
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Card [CARD]"}}\n\n'
    )


def test_responses_edit_of_the_completed_response():
    codec, events = decode("/v1/responses", SSE, s.RESPONSES_STREAM)
    completed = events[-1]
    for delta in list(completed.deltas):
        set_delta_text(completed, delta, "X")
    (payload,) = sse_payloads(codec.encode([completed]))
    output = payload["response"]["output"]
    assert output[0]["summary"][0]["text"] == "X"
    assert output[1]["content"][0] == {"type": "output_text", "text": "X", "annotations": []}
    assert output[2]["arguments"] == "X" and output[2]["call_id"] == "call_9"


def test_remove_delta_drops_the_key_and_dropped_events_vanish():
    codec, events = decode("/v1/chat/completions", SSE, s.CHAT_REASONING_STREAM)
    for event in events:
        for delta in [d for d in event.deltas if d.channel == REASONING]:
            remove_delta(event, delta)
    assert all(d.channel != REASONING for e in events for d in e.deltas)
    events[0].dropped = True  # the keep-alive
    out = codec.encode(events)
    assert not out.startswith(b": keep-alive")
    payloads = sse_payloads(out)
    assert "reasoning_content" not in payloads[1]["choices"][0]["delta"]
    assert payloads[4]["choices"][0]["delta"] == {"content": "Bonjour ", "reasoning_content": None}  # untouched
    assert payloads[-1] == "[DONE]"


def test_anthropic_tool_use_input_rewrite_parses_json_or_keeps_a_string():
    codec, (event,) = decode("/v1/messages", "application/json", s.ANTHROPIC_BODY)
    tool = event.deltas[2]
    set_delta_text(event, tool, '{"to": "[EMAIL]", "n": 2}')
    body = json.loads(codec.encode([event]))
    assert body["content"][3]["input"] == {"to": "[EMAIL]", "n": 2}
    assert body["content"][1] == {"type": "redacted_thinking", "data": "EmwKAhgB"}

    set_delta_text(event, tool, '{"to": "[EMAIL]", "n":')  # no longer JSON: stored as the text itself
    body = json.loads(codec.encode([event]))
    assert body["content"][3]["input"] == '{"to": "[EMAIL]", "n":'


def test_json_body_edit_is_compact_json_with_unicode():
    codec, (event,) = decode("/v1/chat/completions", "application/json", s.CHAT_BODY)
    set_delta_text(event, event.deltas[3], "Aussi 42 \u2014 \U0001f600")
    out = codec.encode([event])
    assert "\u2014 \U0001f600".encode() in out and b"\n" not in out
    body = json.loads(out)
    assert body["choices"][1]["message"]["content"] == [{"type": "text", "text": "Aussi 42 \u2014 \U0001f600"}]
    assert body["service_tier"] == "default" and body["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"


def test_malformed_json_in_an_sse_event_is_opaque_text():
    stream = (
        b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"secret@example.com\n\n'
        b'data: plain words\n\n'
        b'data: [DONE]\n\n'
    )
    codec, events = decode("/v1/chat/completions", SSE, stream)
    assert events[1].payload is None
    assert events[1].deltas == [Delta(TEXT, '{"choices":[{"index":0,"delta":{"content":"secret@example.com', (), "text")]
    assert events[2].deltas == [Delta(TEXT, "plain words", (), "text")]
    assert events[3].deltas == []
    assert codec.encode(events) == stream
    set_delta_text(events[1], events[1].deltas[0], "[EMAIL]\nline two")
    assert codec.encode([events[1]]) == b"data: [EMAIL]\ndata: line two\n\n"


def test_malformed_json_body_is_one_opaque_text_delta():
    body = b'{"choices": [{"message": {"content": "bob@example.com"'
    codec, (event,) = decode("/v1/chat/completions", "application/json", body)
    assert event.payload is None and event.deltas == [Delta(TEXT, body.decode(), (), "text")]
    set_delta_text(event, event.deltas[0], "[MASKED]")
    assert codec.encode([event]) == b"[MASKED]"
    remove_delta(event, event.deltas[0])
    assert codec.encode([event]) == b""


def test_unicode_escapes_and_surrogate_pairs_come_out_unescaped():
    stream = b'data: {"choices":[{"index":0,"delta":{"content":"caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\"}}]}\n\n'
    _, (event,) = decode("/v1/chat/completions", SSE, stream)
    assert event.deltas[0].text == 'café 😀 "q" \\'


def test_remove_delta_edge_cases():
    # A list slot is blanked rather than deleted, so the paths of later deltas stay valid.
    payload = {"parts": ["a", "b"]}
    first, second = Delta(TEXT, "a", ("parts", 0), "k"), Delta(TEXT, "b", ("parts", 1), "k")
    event = Event(raw=b"", deltas=[first, second], payload=payload)
    remove_delta(event, first)
    assert payload == {"parts": ["", "b"]} and event.deltas == [second] and event.dirty
    set_delta_text(event, second, "B")
    assert payload == {"parts": ["", "B"]}

    # Opaque SSE data: the delta stays, emptied, and the event is written with empty data.
    codec, (opaque,) = decode("/v1/chat/completions", SSE, b"event: note\ndata: not json\n\n")
    remove_delta(opaque, opaque.deltas[0])
    assert codec.encode([opaque]) == b"event: note\ndata: \n\n"
