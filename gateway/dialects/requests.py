"""Texts inside a request body, for policy detection and optional prompt masking before forwarding.

``request_texts(path, body)`` returns a :class:`Delta` per text with its ``path`` in the body, so
``set_request_text`` can rewrite it in place. Channels: CONTENT for prompt and message text (tool results
included), REASONING for reasoning/thinking handed back in the history, TOOL_ARGS for earlier tool call
arguments. ``stream_key`` is the author's role (``system``, ``developer``, ``user``, ``assistant``, ``tool``),
so a policy can tell the user's words from an echoed assistant turn.

Anthropic ``tool_use.input`` is an object and is exposed as its JSON text; see :mod:`gateway.dialects.edit` for
how a rewrite is stored back.
"""
from __future__ import annotations

import json
from typing import Any

from gateway.dialects import dialect_name_for
from gateway.dialects.base import CONTENT, REASONING, TOOL_ARGS, Delta
from gateway.dialects.edit import set_at_path

Path = tuple[Any, ...]


def _list(value: Any) -> list[Any]:
    """Bodies come from clients: a field that should be a list may be anything."""
    return value if isinstance(value, list) else []


class _Collector:
    def __init__(self) -> None:
        self.deltas: list[Delta] = []

    def add(self, channel: str, value: Any, path: Path, role: str) -> None:
        if isinstance(value, str) and value:
            self.deltas.append(Delta(channel, value, path, role))

    def parts(self, content: Any, path: Path, role: str) -> None:
        """A content that is a string or a list of parts/blocks with ``text`` (nested tool results too)."""
        if isinstance(content, str):
            self.add(CONTENT, content, path, role)
            return
        if not isinstance(content, list):
            return
        for k, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            here = path + (k,)
            if kind == "thinking":
                self.add(REASONING, part.get("thinking"), here + ("thinking",), role)
            elif kind == "reasoning_text":
                self.add(REASONING, part.get("text"), here + ("text",), role)
            elif kind in ("tool_use", "server_tool_use") and "input" in part:
                self.add(TOOL_ARGS, json.dumps(part["input"], ensure_ascii=False), here + ("input",), role)
            elif kind == "tool_result":
                self.parts(part.get("content"), here + ("content",), "tool")
            else:
                self.add(CONTENT, part.get("text"), here + ("text",), role)
                self.add(CONTENT, part.get("refusal"), here + ("refusal",), role)


def _chat(body: dict[str, Any], out: _Collector) -> None:
    for i, msg in enumerate(_list(body.get("messages"))):
        if not isinstance(msg, dict):
            continue
        role = str(msg.get("role", "user"))
        out.parts(msg.get("content"), ("messages", i, "content"), role)
        for field in ("reasoning_content", "reasoning"):
            out.add(REASONING, msg.get(field), ("messages", i, field), role)
        for j, call in enumerate(_list(msg.get("tool_calls"))):
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                args = call["function"].get("arguments")
                out.add(TOOL_ARGS, args, ("messages", i, "tool_calls", j, "function", "arguments"), role)


def _responses(body: dict[str, Any], out: _Collector) -> None:
    out.add(CONTENT, body.get("instructions"), ("instructions",), "system")
    items = body.get("input")
    if isinstance(items, str):
        out.add(CONTENT, items, ("input",), "user")
        return
    for i, item in enumerate(_list(items)):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        here: Path = ("input", i)
        if kind == "message":
            out.parts(item.get("content"), here + ("content",), str(item.get("role", "user")))
        elif kind == "reasoning":
            for s, part in enumerate(_list(item.get("summary"))):
                if isinstance(part, dict):
                    out.add(REASONING, part.get("text"), here + ("summary", s, "text"), "assistant")
            for c, part in enumerate(_list(item.get("content"))):
                if isinstance(part, dict):
                    out.add(REASONING, part.get("text"), here + ("content", c, "text"), "assistant")
        elif kind in ("function_call", "custom_tool_call"):
            field = "arguments" if kind == "function_call" else "input"
            out.add(TOOL_ARGS, item.get(field), here + (field,), "assistant")
        elif kind in ("function_call_output", "custom_tool_call_output"):
            out.parts(item.get("output"), here + ("output",), "tool")


def _anthropic(body: dict[str, Any], out: _Collector) -> None:
    out.parts(body.get("system"), ("system",), "system")
    for i, msg in enumerate(_list(body.get("messages"))):
        if isinstance(msg, dict):
            out.parts(msg.get("content"), ("messages", i, "content"), str(msg.get("role", "user")))


_BY_DIALECT = {"openai_chat": _chat, "openai_responses": _responses, "anthropic_messages": _anthropic}


def request_texts(path: str, body: Any) -> list[Delta]:
    """The texts of a parsed request body, in body order; [] for a dialect we do not know or a non-object body."""
    walk = _BY_DIALECT.get(dialect_name_for(path))
    if walk is None or not isinstance(body, dict):
        return []
    out = _Collector()
    walk(body, out)
    return out.deltas


def set_request_text(body: dict[str, Any], delta: Delta, new_text: str) -> None:
    """Rewrite one text found by :func:`request_texts` (in the body and in the delta)."""
    delta.text = new_text
    set_at_path(body, delta.path, new_text)
