"""OpenAI Chat Completions: `chat.completion.chunk` SSE events and whole `chat.completion` bodies.

Texts exposed, per choice (``delta`` in a stream, ``message`` in a body):

============================================  =========  ===============================
field                                         channel    stream_key
============================================  =========  ===============================
``content`` (string, or ``text`` parts)       CONTENT    ``content:{c}``
``refusal``                                   CONTENT    ``content:{c}:refusal``
``reasoning_content``                         REASONING  ``reasoning:{c}``
``reasoning`` (when a string)                 REASONING  ``reasoning:{c}:reasoning``
``reasoning_details[k].text`` / ``.summary``  REASONING  ``reasoning:{c}:details{k}``
``tool_calls[j].function.arguments``          TOOL_ARGS  ``tool_args:{c}:{t}``
``function_call.arguments`` (legacy)          TOOL_ARGS  ``tool_args:{c}:function_call``
============================================  =========  ===============================

``{c}`` is the choice's ``index`` field and ``{t}`` the tool call's ``index`` field (the positions in the lists
when absent): a stream sends each choice and tool call in many chunks, and these indexes, not list positions, are
what tie the chunks together. Servers that send both ``reasoning_content`` and ``reasoning`` (vLLM during its
rename, OpenRouter) repeat the same text in both, hence distinct keys: each is its own logical stream.
``reasoning_details`` (OpenRouter) repeats the reasoning again, so it is exposed too; otherwise it would leak.
Empty or null texts give no delta.
"""
from __future__ import annotations

from typing import Any

from gateway.dialects.base import CONTENT, REASONING, TOOL_ARGS, Delta
from gateway.dialects.framing import JsonBodyCodec, SseCodec, is_text

DIALECT = "openai_chat"


def _index(item: dict[str, Any], position: int) -> Any:
    index = item.get("index")
    return index if isinstance(index, int) else position


# Plain string fields of a message/delta -> (channel, stream key suffix after the choice index).
_STRING_FIELDS = {
    "content": (CONTENT, ""),
    "refusal": (CONTENT, ":refusal"),
    "reasoning_content": (REASONING, ""),
    "reasoning": (REASONING, ":reasoning"),
}


def _message_deltas(msg: dict[str, Any], base: tuple[Any, ...], c: Any) -> list[Delta]:
    out: list[Delta] = []
    # One pass over the (small) message in its own key order; this runs for every chunk of every stream.
    for field, value in msg.items():
        if value is None:
            continue
        if type(value) is str:
            spec = _STRING_FIELDS.get(field)
            if spec is not None and value:
                out.append(Delta(spec[0], value, base + (field,), f"{spec[0]}:{c}{spec[1]}"))
        elif field == "content" and isinstance(value, list):
            for k, part in enumerate(value):
                if isinstance(part, dict) and part.get("type", "text") == "text" and is_text(part.get("text")):
                    out.append(Delta(CONTENT, part["text"], base + ("content", k, "text"), f"content:{c}"))
        elif field == "tool_calls" and isinstance(value, list):
            for j, call in enumerate(value):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and is_text(function.get("arguments")):
                    path = base + ("tool_calls", j, "function", "arguments")
                    out.append(Delta(TOOL_ARGS, function["arguments"], path, f"tool_args:{c}:{_index(call, j)}"))
        elif field == "function_call" and isinstance(value, dict) and is_text(value.get("arguments")):
            path = base + ("function_call", "arguments")
            out.append(Delta(TOOL_ARGS, value["arguments"], path, f"tool_args:{c}:function_call"))
        elif field == "reasoning_details" and isinstance(value, list):
            for k, detail in enumerate(value):
                if isinstance(detail, dict):
                    key = f"reasoning:{c}:details{_index(detail, k)}"
                    for name in ("text", "summary"):
                        if is_text(detail.get(name)):
                            out.append(Delta(REASONING, detail[name], base + ("reasoning_details", k, name), key))
    return out


def _extractor(message_key: str):
    def extract(payload: dict[str, Any], _event_name: str | None = None) -> list[Delta]:
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return []
        out: list[Delta] = []
        for i, choice in enumerate(choices):
            if isinstance(choice, dict):
                msg = choice.get(message_key)
                if isinstance(msg, dict):
                    out += _message_deltas(msg, ("choices", i, message_key), _index(choice, i))
        return out

    return extract


extract_chunk = _extractor("delta")
"""Deltas of one streamed `chat.completion.chunk`."""
extract_body = _extractor("message")
"""Deltas of a whole `chat.completion` body."""


def closes_chunk(payload: dict[str, Any], _event_name: str | None, deltas: list[Delta]) -> tuple[str, ...]:
    """A choice's streams end with its `finish_reason`; its reasoning ends when its answer starts (reasoning
    models think first, then answer), so held reasoning is not shown after the answer."""
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return ()
    out: list[str] = []
    for i, choice in enumerate(choices):
        if isinstance(choice, dict) and choice.get("finish_reason"):
            c = _index(choice, i)
            out += [f"content:{c}", f"reasoning:{c}", f"tool_args:{c}"]
    for delta in deltas:
        if delta.channel == CONTENT:
            out.append("reasoning:" + delta.stream_key.split(":")[1])
    return tuple(out)


def codec(streaming: bool) -> SseCodec | JsonBodyCodec:
    """A fresh codec for one response body."""
    return SseCodec(DIALECT, extract_chunk, closes_chunk) if streaming else JsonBodyCodec(DIALECT, extract_body)
