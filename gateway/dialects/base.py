"""What the dialect layer hands to response filters: events made of (channel, text) deltas.

A codec turns the upstream body into ``Event`` objects as bytes arrive and turns them back into bytes. An event
that no filter changed is written back as its original ``raw`` bytes, so pass-through is byte-exact; a changed
event is re-serialised from its parsed ``payload``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

CONTENT = "content"
"""Answer text (OpenAI `content`, Anthropic `text_delta`, Responses `output_text`)."""
REASONING = "reasoning"
"""Reasoning/thinking text (`reasoning_content`, `reasoning`, `thinking_delta`, Responses reasoning summaries)."""
TOOL_ARGS = "tool_args"
"""Tool call argument text (`function.arguments`, `input_json_delta.partial_json`)."""
TEXT = "text"
"""Opaque text of a body in no known dialect."""


@dataclass(slots=True)
class Delta:
    """One piece of text carried by an event, and where it lives inside the event's payload."""

    channel: str
    """CONTENT, REASONING, TOOL_ARGS or TEXT."""
    text: str
    """The text as the client would see it (JSON-unescaped)."""
    path: tuple[Any, ...] = ()
    """Keys/indexes from the payload root to the string holding ``text`` (empty for opaque text)."""
    stream_key: str = ""
    """Identifies the logical stream this delta continues (channel + choice/block/item index), for holdback."""


@dataclass(slots=True)
class Event:
    """A unit of the response: one SSE event, one whole JSON body, or one piece of an opaque body."""

    raw: bytes
    """The exact bytes received for this event (SSE event incl. its blank line; whole JSON body; opaque piece)."""
    deltas: list[Delta] = field(default_factory=list)
    """Texts in this event that filters may inspect and rewrite."""
    payload: Any = None
    """Parsed JSON of the event data, or None when the event carries no JSON."""
    name: str | None = None
    """SSE `event:` field, when there is one."""
    dirty: bool = False
    """Set when a filter changed the event; the codec re-serialises dirty events from ``payload``."""
    dropped: bool = False
    """Set when a filter removed the whole event from the response."""
    splices: list[tuple[str, str]] | None = None
    """String values a filter replaced (old, new), in order, so the codec can patch ``raw`` in place instead of
    re-serialising the whole payload; None once an edit was structural (a removed key, a non-string value)."""
    closes: tuple[str, ...] = ()
    """Logical streams that end with this event (see ``closes_key``): text a filter still holds for them must be
    released *before* this event, e.g. before Anthropic's `content_block_stop` or a chat `finish_reason`."""


ALL_STREAMS = "*"


def closes_key(closes: tuple[str, ...], key: str) -> bool:
    """Does an event with ``closes`` end the stream ``key``? A pattern ends its key and the keys below it
    (`reasoning:0` ends `reasoning:0` and `reasoning:0:details1`, not `reasoning:01`); `*` ends every stream."""
    for pattern in closes:
        if pattern == ALL_STREAMS or key == pattern or key.startswith(pattern + ":"):
            return True
    return False


class Codec(Protocol):
    """Incremental decoder/encoder for one response body."""

    dialect: str
    """`openai_chat`, `openai_responses`, `anthropic_messages` or `opaque`."""

    def decode(self, data: bytes, end_stream: bool) -> list[Event]:
        """Feed the next received bytes; return the events completed by them (all remaining ones at end)."""
        ...

    def encode(self, events: list[Event]) -> bytes:
        """Bytes to send for these events: raw when untouched, re-serialised when dirty, nothing when dropped."""
        ...
