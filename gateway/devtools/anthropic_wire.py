"""Anthropic Messages wire format: message bodies and SSE events (always with ``event:`` lines), from a ``Script``.

The anthropic SDK skips SSE frames without an ``event:`` line and needs a ``signature`` on thinking blocks, so
both are always present.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from gateway.devtools.openai_wire import new_id, sse
from gateway.devtools.scripts import Script


def _signature(thinking: str) -> str:
    # Opaque to clients; derived from the text so a changed thinking block visibly carries a stale signature.
    return base64.b64encode(hashlib.sha512(thinking.encode()).digest() * 2).decode()


def _usage(s: Script, output_tokens: int) -> dict:
    return {"input_tokens": s.prompt_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": output_tokens, "service_tier": "standard"}


def _stop_reason(s: Script) -> str:
    return "tool_use" if s.tool else "end_turn"


def message(s: Script, model: str) -> dict:
    content: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": s.reasoning_text, "signature": _signature(s.reasoning_text)}]
    if s.tool:
        content.append({"type": "tool_use", "id": new_id("toolu_"), "name": s.tool.name,
                        "input": json.loads(s.tool.arguments_json)})
    else:
        content.append({"type": "text", "text": s.content_text})
    return {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": _stop_reason(s), "stop_sequence": None, "usage": _usage(s, s.completion_tokens)}


def message_events(s: Script, model: str) -> list[bytes]:
    """The Messages event stream: thinking block (deltas + signature), then the text or tool_use block."""
    frames: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        frames.append(sse({"type": kind, **fields}, event=kind))

    emit("message_start", message={"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model,
                                   "content": [], "stop_reason": None, "stop_sequence": None,
                                   "usage": _usage(s, 1)})
    emit("ping")
    emit("content_block_start", index=0, content_block={"type": "thinking", "thinking": "", "signature": ""})
    for piece in s.reasoning:
        emit("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": piece})
    emit("content_block_delta", index=0, delta={"type": "signature_delta", "signature": _signature(s.reasoning_text)})
    emit("content_block_stop", index=0)
    if s.tool:
        emit("content_block_start", index=1,
             content_block={"type": "tool_use", "id": new_id("toolu_"), "name": s.tool.name, "input": {}})
        for piece in s.tool.arguments:
            emit("content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": piece})
    else:
        emit("content_block_start", index=1, content_block={"type": "text", "text": ""})
        for piece in s.content:
            emit("content_block_delta", index=1, delta={"type": "text_delta", "text": piece})
    emit("content_block_stop", index=1)
    emit("message_delta", delta={"stop_reason": _stop_reason(s), "stop_sequence": None},
         usage={"output_tokens": s.completion_tokens})
    emit("message_stop")
    return frames


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> dict:
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}
