"""Each dialect says where a logical stream ends, so a masker can release held text before that event."""
from gateway.dialects import codec_for
from gateway.dialects.base import closes_key
from tests.dialects.dialect_samples import ANTHROPIC_STREAM, CHAT_REASONING_STREAM, RESPONSES_STREAM


def _events(path, stream):
    codec = codec_for(path, "text/event-stream")
    return codec.decode(stream, True)


def _first_close(events, key):
    """Index of the first event closing `key`, and the indexes of events carrying deltas for it."""
    close = next(i for i, e in enumerate(events) if closes_key(e.closes, key))
    carrying = [i for i, e in enumerate(events) if any(d.stream_key == key for d in e.deltas)]
    return close, carrying


def test_closes_key_matches_the_key_and_its_children_only():
    assert closes_key(("reasoning:0",), "reasoning:0") and closes_key(("reasoning:0",), "reasoning:0:details1")
    assert not closes_key(("reasoning:0",), "reasoning:01") and not closes_key(("content:0",), "reasoning:0")
    assert closes_key(("*",), "tool_args:3:1")


def test_chat_reasoning_closes_when_the_answer_starts_and_all_close_at_finish():
    events = _events("/v1/chat/completions", CHAT_REASONING_STREAM)
    close, carrying = _first_close(events, "reasoning:0")
    assert carrying and close > max(carrying)
    assert any(d.channel == "content" for d in events[close].deltas)  # the first answer chunk
    close, carrying = _first_close(events, "content:0")
    assert close > max(carrying)


def test_anthropic_blocks_close_at_content_block_stop():
    events = _events("/v1/messages", ANTHROPIC_STREAM)
    for key in ("reasoning:block0", "content:block1"):
        close, carrying = _first_close(events, key)
        assert carrying and close > max(carrying)
        assert events[close].payload["type"] == "content_block_stop"


def test_responses_streams_close_at_their_done_event():
    events = _events("/v1/responses", RESPONSES_STREAM)
    keys = {d.stream_key for e in events for d in e.deltas if not d.stream_key.endswith(":full")}
    assert keys
    for key in keys:
        close, carrying = _first_close(events, key)
        pieces = [i for i in carrying if not events[i].payload["type"].endswith((".done", ".added"))]
        assert close > max(pieces), key
        assert events[close].payload["type"].endswith(".done")
