"""The SSE decoder: WHATWG field rules, byte-exact raws, and independence from how the bytes were chunked."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dialects.sse import SseDecoder, SseEvent, rewrite_data
from tests.dialects.dialect_samples import ANTHROPIC_STREAM, CHAT_TOOLS_STREAM, split_at


def decode(chunks: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_fields_follow_the_spec():
    stream = (
        b"\xef\xbb\xbfevent: update\ndata: first\ndata:second\ndata:  two spaces\nid: 7\nretry: 1500\n: note\n\n"
        b"data\n\nretry: soon\nid: a\x00b\nevent\n\n"
    )
    first, second, third = decode([stream])
    assert first.event == "update"
    assert first.data == "first\nsecond\n two spaces"  # only one leading space is stripped
    assert (first.id, first.retry, first.comments) == ("7", 1500, (" note",))
    assert first.raw.startswith(b"\xef\xbb\xbfevent")  # the BOM belongs to the first event's bytes
    assert second.data == "" and second.event is None  # a bare `data` line is an empty data field
    assert third.data is None and third.retry is None and third.id is None and third.event == ""


def test_line_terminators_cr_lf_crlf_and_mixed():
    events = decode([b"data: a\r\r" b"data: b\r\n\r\n" b"data: c\n\r\n" b"data: d\r\n\n"])
    assert [e.data for e in events] == ["a", "b", "c", "d"]
    assert [e.raw for e in events] == [b"data: a\r\r", b"data: b\r\n\r\n", b"data: c\n\r\n", b"data: d\r\n\n"]


def test_cr_at_chunk_end_waits_for_a_possible_lf():
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r\n\r") == []  # this CR may be the start of a CRLF
    (event,) = decoder.feed(b"\ndata: b")
    assert event.raw == b"data: a\r\n\r\n"  # so the LF belongs to the first event, not the next
    (tail,) = decoder.close()
    assert tail == SseEvent(raw=b"data: b", data="b", complete=False)


def test_lone_cr_at_end_of_stream_terminates_the_event():
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r\r") == []
    assert decoder.close() == [SseEvent(raw=b"data: a\r\r", data="a")]


def test_bom_split_across_chunks_and_a_bom_lookalike():
    assert [e.data for e in decode([b"\xef", b"\xbb", b"\xbfdata: x\n\n"])] == ["x"]
    (event,) = decode([b"\xef\xbbdata: x\n\n"])  # not a BOM: it is part of the first field name
    assert event.data is None and event.raw == b"\xef\xbbdata: x\n\n"


def test_keep_alive_comment_is_an_event_without_data():
    (event,) = decode([b": ping\n\n"])
    assert event.data is None and event.comments == (" ping",) and event.raw == b": ping\n\n"


def test_multibyte_utf8_split_inside_a_character():
    stream = "data: caf\u00e9 \U0001f600\n\n".encode()
    for cut in range(len(stream) + 1):
        assert [e.data for e in decode([stream[:cut], stream[cut:]])] == ["caf\u00e9 \U0001f600"]


def test_real_streams_fed_byte_by_byte_equal_one_piece():
    for stream in (CHAT_TOOLS_STREAM, ANTHROPIC_STREAM):
        whole = decode([stream])
        assert decode([stream[i:i + 1] for i in range(len(stream))]) == whole
        assert b"".join(e.raw for e in whole) == stream


# --- property tests over generated streams -------------------------------------------------------------------

_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12)
_names = st.sampled_from(["data", "event", "id", "retry", "x-unknown", ""])


@st.composite
def _line(draw):
    """One non-blank line as text, and the (field, value) the spec says it holds (None for a comment)."""
    if draw(st.integers(0, 5)) == 0:
        return ":" + draw(_values), None
    name = draw(_names)
    if draw(st.integers(0, 6)) == 0:
        # no colon at all: the whole line is the field name, with an empty value
        return (name or "data"), ((name or "data"), "")
    value = draw(_values)
    space = draw(st.booleans())
    text = f"{name}:{' ' if space else ''}{value}"
    if not space and value.startswith(" "):
        value = value[1:]
    if name == "retry" and draw(st.booleans()):
        digits = str(draw(st.integers(0, 10**6)))
        return f"retry: {digits}", ("retry", digits)
    return text, (name, value)


@st.composite
def sse_stream(draw, mixed_terminators: bool):
    """Bytes of a stream plus, per event, the expected (event, data, id, retry)."""
    terms = ["\n", "\r\n", "\r"]
    fixed = draw(st.sampled_from(terms))
    count = draw(st.integers(0, 6))
    pieces = ["\ufeff"] if count and draw(st.booleans()) else []  # a lone BOM is a trailing partial event
    expected = []
    for _ in range(count):
        event = data = id_ = retry = None
        for text, field in draw(st.lists(_line(), max_size=5)):
            pieces.append(text + (draw(st.sampled_from(terms)) if mixed_terminators else fixed))
            if field is None:
                continue
            name, value = field
            if name == "data":
                data = value if data is None else data + "\n" + value
            elif name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                id_ = value
            elif name == "retry" and value.isascii() and value.isdigit():
                retry = int(value)
        pieces.append(draw(st.sampled_from(terms)) if mixed_terminators else fixed)
        expected.append((event, data, id_, retry))
    return "".join(pieces).encode(), expected


@settings(max_examples=400, deadline=None)
@given(sse_stream(mixed_terminators=False))
def test_generated_streams_decode_to_the_expected_events(case):
    stream, expected = case
    events = decode([stream])
    assert [(e.event, e.data, e.id, e.retry) for e in events] == expected
    assert all(e.complete for e in events)
    assert b"".join(e.raw for e in events) == stream


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_any_chunking_gives_the_same_events_and_raws(data):
    stream, _ = data.draw(sse_stream(mixed_terminators=True))
    stream += data.draw(st.sampled_from([b"", b"data: unterminated", b"data: x\r", b"id: 1\n"]))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    whole = decode([stream])
    assert decode(split_at(stream, cuts)) == whole
    assert b"".join(e.raw for e in whole) == stream


# --- rewrite_data ---------------------------------------------------------------------------------------------

def test_rewrite_keeps_other_lines_order_and_terminators():
    raw = b"event: delta\r\nid: 3\r\ndata: {\"a\":\r\ndata: 1}\r\n: c\r\n\r\n"
    new = rewrite_data(raw, '{"a":2}')
    assert new == b"event: delta\r\nid: 3\r\ndata: {\"a\":2}\r\n: c\r\n\r\n"
    (event,) = decode([new])
    assert (event.event, event.id, event.data) == ("delta", "3", '{"a":2}')


def test_rewrite_multiline_text_and_dataless_event():
    assert rewrite_data(b"data:x\n\n", "one\ntwo\r\nthree") == b"data: one\ndata: two\ndata: three\n\n"
    assert rewrite_data(b": ping\r\r", "t") == b": ping\rdata: t\r\r"
    assert rewrite_data(b"\xef\xbb\xbfdata: a\n\n", "b") == b"\xef\xbb\xbfdata: b\n\n"
    assert rewrite_data(b"event: e\ndata: a", "b") == b"event: e\ndata: b"  # unterminated stays unterminated
