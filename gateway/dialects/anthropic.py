"""Anthropic Messages: the SSE event stream and whole `message` bodies.

Every text belongs to a content block; ``{i}`` is the block's ``index`` in a stream and its position in
``content`` in a body:

==================================================  =========  ==================
where                                               channel    stream_key
==================================================  =========  ==================
``text_delta.text``, ``text`` block ``.text``       CONTENT    ``content:block{i}``
``thinking_delta.thinking``, ``thinking`` block     REASONING  ``reasoning:block{i}``
``input_json_delta.partial_json``                   TOOL_ARGS  ``tool_args:block{i}``
``tool_use`` / ``server_tool_use`` ``.input`` body  TOOL_ARGS  ``tool_args:block{i}``
==================================================  =========  ==================

``content_block_start`` may carry initial text/thinking, which starts the block's stream (same key). A
``tool_use`` block starts with ``input: {}`` and receives its JSON only through ``input_json_delta``, so the start
gives no delta. ``signature_delta``, ``redacted_thinking`` and the message-level events (``message_start``,
``ping``, ``message_delta``, ``message_stop``, ``error``) carry no text to inspect.

In a body, ``tool_use.input`` is a JSON object, not text: it is exposed as ``json.dumps(input)`` (path points at
``input``). A rewrite stores the new text parsed back into an object when it is still valid JSON, and as a plain
string otherwise (see :mod:`gateway.dialects.edit`); a masker that only replaces string contents keeps it JSON.
"""
from __future__ import annotations

import json
from typing import Any

from gateway.dialects.base import ALL_STREAMS, CONTENT, REASONING, TOOL_ARGS, Delta
from gateway.dialects.framing import JsonBodyCodec, SseCodec, is_text

DIALECT = "anthropic_messages"

# delta type -> (channel, field with the text, stream key prefix)
_STREAM_DELTAS: dict[str, tuple[str, str, str]] = {
    "text_delta": (CONTENT, "text", "content"),
    "thinking_delta": (REASONING, "thinking", "reasoning"),
    "input_json_delta": (TOOL_ARGS, "partial_json", "tool_args"),
}
# block type -> (channel, field with the text, stream key prefix)
_BLOCKS: dict[str, tuple[str, str, str]] = {
    "text": (CONTENT, "text", "content"),
    "thinking": (REASONING, "thinking", "reasoning"),
}


def _block_delta(block: Any, specs: dict[str, tuple[str, str, str]], path: tuple[Any, ...], i: Any) -> list[Delta]:
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    spec = specs.get(kind) if isinstance(kind, str) else None
    if spec is None:
        return []
    channel, field, prefix = spec
    text = block.get(field)
    if not is_text(text):
        return []
    return [Delta(channel, text, path + (field,), f"{prefix}:block{i}")]


def extract_event(payload: dict[str, Any], _event_name: str | None = None) -> list[Delta]:
    """Deltas of one streamed event (its ``type`` field says which; it always matches the SSE `event:` name)."""
    kind = payload.get("type")
    if kind == "content_block_delta":
        return _block_delta(payload.get("delta"), _STREAM_DELTAS, ("delta",), payload.get("index", 0))
    if kind == "content_block_start":
        return _block_delta(payload.get("content_block"), _BLOCKS, ("content_block",), payload.get("index", 0))
    return []


def extract_body(payload: dict[str, Any], _event_name: str | None = None) -> list[Delta]:
    """Deltas of a whole `message` body."""
    content = payload.get("content")
    if not isinstance(content, list):
        return []
    out: list[Delta] = []
    for i, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") in ("tool_use", "server_tool_use") and "input" in block:
            text = json.dumps(block["input"], ensure_ascii=False)
            out.append(Delta(TOOL_ARGS, text, ("content", i, "input"), f"tool_args:block{i}"))
        else:
            out += _block_delta(block, _BLOCKS, ("content", i), i)
    return out


def closes_event(payload: dict[str, Any], _event_name: str | None, _deltas: list[Delta]) -> tuple[str, ...]:
    """`content_block_stop` ends its block's stream (held text must come before it); the message end ends all."""
    kind = payload.get("type")
    if kind == "content_block_stop":
        i = payload.get("index", 0)
        return (f"content:block{i}", f"reasoning:block{i}", f"tool_args:block{i}")
    if kind in ("message_delta", "message_stop", "error"):
        return (ALL_STREAMS,)
    return ()


def codec(streaming: bool) -> SseCodec | JsonBodyCodec:
    """A fresh codec for one response body."""
    return SseCodec(DIALECT, extract_event, closes_event) if streaming else JsonBodyCodec(DIALECT, extract_body)
