"""OpenAI Responses API: the typed SSE event stream and whole `response` bodies.

Stream keys name the output item ``{o}`` (``output_index``) and the part within it:

=====================================================  =========  ===================================
where                                                  channel    stream_key
=====================================================  =========  ===================================
``response.output_text.delta`` / ``refusal.delta``     CONTENT    ``content:{o}:{c}`` (content_index)
``response.reasoning_summary_text.delta``              REASONING  ``reasoning:{o}:summary{s}``
``response.reasoning_text.delta``                      REASONING  ``reasoning:{o}:{c}``
``response.function_call_arguments.delta``             TOOL_ARGS  ``tool_args:{o}``
``response.custom_tool_call_input.delta``              TOOL_ARGS  ``tool_args:{o}``
=====================================================  =========  ===================================

The same text is repeated, whole, by the ``.done`` events, by ``response.content_part.*``,
``response.reasoning_summary_part.*`` and ``response.output_item.*`` (their ``part``/``item``), and by the
``response`` object of ``response.completed`` (and created/in_progress/incomplete/failed). All of these are exposed
too, or the text would reach the client unmasked through them. A delta carrying such a complete text gets the
same key plus ``:full``: it does not continue the streamed pieces, and a streaming masker should scan it whole
rather than hold part of it back. ``.added`` events give the beginning of a stream, so their keys have no suffix.

A whole body (non-streaming) is one `response` object: ``output[]`` items of type ``message``
(``content[].text``/``.refusal``), ``reasoning`` (``summary[].text``, ``content[].text``), ``function_call``
(``arguments``), ``custom_tool_call`` (``input``), with the same keys and no suffix.
"""
from __future__ import annotations

from typing import Any

from gateway.dialects.base import ALL_STREAMS, CONTENT, REASONING, TOOL_ARGS, Delta
from gateway.dialects.framing import JsonBodyCodec, SseCodec, is_text

DIALECT = "openai_responses"
FULL = ":full"

# event type -> (channel, field with the text, stream key template)
_TEXT_EVENTS: dict[str, tuple[str, str, str]] = {
    "response.output_text.delta": (CONTENT, "delta", "content:{o}:{c}"),
    "response.output_text.done": (CONTENT, "text", "content:{o}:{c}" + FULL),
    "response.refusal.delta": (CONTENT, "delta", "content:{o}:{c}"),
    "response.refusal.done": (CONTENT, "refusal", "content:{o}:{c}" + FULL),
    "response.reasoning_summary_text.delta": (REASONING, "delta", "reasoning:{o}:summary{s}"),
    "response.reasoning_summary_text.done": (REASONING, "text", "reasoning:{o}:summary{s}" + FULL),
    "response.reasoning_text.delta": (REASONING, "delta", "reasoning:{o}:{c}"),
    "response.reasoning_text.done": (REASONING, "text", "reasoning:{o}:{c}" + FULL),
    "response.function_call_arguments.delta": (TOOL_ARGS, "delta", "tool_args:{o}"),
    "response.function_call_arguments.done": (TOOL_ARGS, "arguments", "tool_args:{o}" + FULL),
    "response.custom_tool_call_input.delta": (TOOL_ARGS, "delta", "tool_args:{o}"),
    "response.custom_tool_call_input.done": (TOOL_ARGS, "input", "tool_args:{o}" + FULL),
}
_RESPONSE_EVENTS = frozenset({
    "response.created", "response.in_progress", "response.completed", "response.incomplete",
    "response.failed", "response.queued",
})


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _part_deltas(part: Any, path: tuple[Any, ...], channel: str, key: str) -> list[Delta]:
    """A content or summary part: its ``text``, or the ``refusal`` that replaces it."""
    if not isinstance(part, dict):
        return []
    return [
        Delta(channel, part[field], path + (field,), key) for field in ("text", "refusal") if is_text(part.get(field))
    ]


def item_deltas(item: Any, path: tuple[Any, ...], o: Any, suffix: str = "") -> list[Delta]:
    """Deltas of one output item (``message``, ``reasoning``, ``function_call``, ``custom_tool_call``)."""
    if not isinstance(item, dict):
        return []
    kind = item.get("type")
    out: list[Delta] = []
    if kind in ("message", "reasoning"):
        channel = CONTENT if kind == "message" else REASONING
        for c, part in enumerate(_list(item.get("content"))):
            out += _part_deltas(part, path + ("content", c), channel, f"{channel}:{o}:{c}{suffix}")
        for s, part in enumerate(_list(item.get("summary"))):
            out += _part_deltas(part, path + ("summary", s), REASONING, f"reasoning:{o}:summary{s}{suffix}")
    elif kind in ("function_call", "custom_tool_call"):
        field = "arguments" if kind == "function_call" else "input"
        if is_text(item.get(field)):
            out.append(Delta(TOOL_ARGS, item[field], path + (field,), f"tool_args:{o}{suffix}"))
    return out


def response_deltas(response: Any, path: tuple[Any, ...], suffix: str = "") -> list[Delta]:
    """Deltas of a whole `response` object (its ``output`` items)."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        return []
    out: list[Delta] = []
    for o, item in enumerate(response["output"]):
        out += item_deltas(item, path + ("output", o), o, suffix)
    return out


def extract_event(payload: dict[str, Any], event_name: str | None = None) -> list[Delta]:
    """Deltas of one streamed event; its type is the payload's ``type`` (the SSE `event:` name as fallback)."""
    kind = payload.get("type") or event_name
    if not isinstance(kind, str):
        return []
    spec = _TEXT_EVENTS.get(kind)
    o = payload.get("output_index", 0)
    if spec is not None:
        channel, field, template = spec
        text = payload.get(field)
        if not is_text(text):
            return []
        key = template.format(o=o, c=payload.get("content_index", 0), s=payload.get("summary_index", 0))
        return [Delta(channel, text, (field,), key)]
    suffix = FULL if kind.endswith(".done") else ""
    if kind.startswith("response.content_part."):
        c = payload.get("content_index", 0)
        part = payload.get("part")
        # Reasoning items stream their text in content parts too, typed `reasoning_text`.
        channel = REASONING if isinstance(part, dict) and part.get("type") == "reasoning_text" else CONTENT
        return _part_deltas(part, ("part",), channel, f"{channel}:{o}:{c}{suffix}")
    if kind.startswith("response.reasoning_summary_part."):
        s = payload.get("summary_index", 0)
        return _part_deltas(payload.get("part"), ("part",), REASONING, f"reasoning:{o}:summary{s}{suffix}")
    if kind.startswith("response.output_item."):
        return item_deltas(payload.get("item"), ("item",), o, suffix)
    if kind in _RESPONSE_EVENTS:
        return response_deltas(payload.get("response"), ("response",), FULL)
    return []


def extract_body(payload: dict[str, Any], _event_name: str | None = None) -> list[Delta]:
    """Deltas of a whole `response` body."""
    return response_deltas(payload, ())


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


def closes_event(payload: dict[str, Any], event_name: str | None, deltas: list[Delta]) -> tuple[str, ...]:
    """A `.done` event ends the stream whose full text it repeats (held pieces go out before it); an output
    item's `.done` ends all of that item's streams; the response's end ends everything."""
    kind = payload.get("type") or event_name
    if not isinstance(kind, str):
        return ()
    if kind in _TERMINAL:
        return (ALL_STREAMS,)
    if kind == "response.output_item.done":
        o = payload.get("output_index", 0)
        return (f"content:{o}", f"reasoning:{o}", f"tool_args:{o}")
    if kind.endswith(".done"):
        return tuple(d.stream_key.removesuffix(FULL) for d in deltas)
    return ()


def codec(streaming: bool) -> SseCodec | JsonBodyCodec:
    """A fresh codec for one response body."""
    return SseCodec(DIALECT, extract_event, closes_event) if streaming else JsonBodyCodec(DIALECT, extract_body)
