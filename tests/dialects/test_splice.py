"""Changed string values are patched into the upstream's bytes when that is unambiguous, else re-serialised."""
import json

from gateway.dialects import codec_for
from gateway.dialects.edit import remove_delta, set_delta_text


def _roundtrip(raw: bytes, new_text: str, structural: bool = False) -> bytes:
    codec = codec_for("/v1/chat/completions", "text/event-stream")
    events = codec.decode(raw, True)
    delta = events[0].deltas[0]
    if structural:
        remove_delta(events[0], delta)
    else:
        set_delta_text(events[0], delta, new_text)
    return codec.encode(events)


def test_a_unique_value_is_patched_in_place_keeping_the_upstreams_formatting():
    raw = b'data: {"id": "x",  "choices": [{"index": 0, "delta": {"content": "mail a@b.io now"}}]}\n\n'
    out = _roundtrip(raw, "mail [EMAIL] now")
    assert out == raw.replace(b"a@b.io", b"[EMAIL]")  # spacing and key order kept byte for byte


def test_other_escaping_styles_or_repeated_values_fall_back_to_reserialising():
    escaped = b'data: {"choices":[{"index":0,"delta":{"content":"caf\\u00e9 a@b.io"}}]}\n\n'
    out = _roundtrip(escaped, "caf\u00e9 [EMAIL]")
    assert json.loads(out[6:])["choices"][0]["delta"]["content"] == "caf\u00e9 [EMAIL]"
    twice = b'data: {"choices":[{"index":0,"delta":{"content":"x@y.io"}}],"echo":"x@y.io"}\n\n'
    out = _roundtrip(twice, "[EMAIL]")
    payload = json.loads(out[6:])
    assert payload["choices"][0]["delta"]["content"] == "[EMAIL]" and payload["echo"] == "x@y.io"


def test_structural_edits_reserialise():
    raw = b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}\n\n'
    out = _roundtrip(raw, "", structural=True)
    assert json.loads(out[6:]) == {"choices": [{"index": 0, "delta": {}}]}
