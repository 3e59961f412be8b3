"""OpenAI wire format: Chat Completions and Responses API bodies and SSE events, rendered from a ``Script``.

Field order and compact JSON follow what api.openai.com sends, so the gateway's byte-exact pass-through and the
official SDKs both see the real thing. ``reasoning_content`` is the DeepSeek/vLLM convention for chat reasoning.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

from gateway.devtools.scripts import Script


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE frame; ``event:`` line only where the API sends one (Responses yes, Chat Completions no)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {dumps(data)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


# --- Chat Completions -------------------------------------------------------------------------------------------

def _chat_usage(s: Script) -> dict:
    return {
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": s.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _tool_call(s: Script, call_id: str) -> dict:
    assert s.tool is not None
    return {"id": call_id, "type": "function", "function": {"name": s.tool.name, "arguments": s.tool.arguments_json}}


def chat_completion(s: Script, model: str) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": None if s.tool else s.content_text,
                               "reasoning_content": s.reasoning_text, "refusal": None, "annotations": []}
    if s.tool:
        message["tool_calls"] = [_tool_call(s, new_id("call_"))]
    return {
        "id": new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if s.tool else "stop"}],
        "usage": _chat_usage(s), "service_tier": "default", "system_fingerprint": "fp_fake0001",
    }


def chat_chunks(s: Script, model: str, include_usage: bool = False) -> list[bytes]:
    """The whole ``chat.completion.chunk`` stream as SSE frames, ending with ``data: [DONE]``."""
    head = {"id": new_id("chatcmpl-"), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "service_tier": "default", "system_fingerprint": "fp_fake0001"}

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            body["usage"] = None  # the real API sends an explicit null until the usage chunk
        return sse(body)

    frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
    frames += [chunk({"reasoning_content": piece}) for piece in s.reasoning]
    if s.tool:
        call = {"index": 0, "id": new_id("call_"), "type": "function",
                "function": {"name": s.tool.name, "arguments": ""}}
        frames.append(chunk({"tool_calls": [call]}))
        frames += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                   for piece in s.tool.arguments]
    frames += [chunk({"content": piece}) for piece in s.content]
    frames.append(chunk({}, "tool_calls" if s.tool else "stop"))
    if include_usage:
        frames.append(sse({**head, "choices": [], "usage": _chat_usage(s)}))
    frames.append(DONE)
    return frames


# --- Responses API ----------------------------------------------------------------------------------------------

def _response(resp_id: str, model: str, status: str, output: list, usage: dict | None) -> dict:
    return {
        "id": resp_id, "object": "response", "created_at": int(time.time()), "status": status,
        "background": False, "error": None, "incomplete_details": None, "instructions": None,
        "max_output_tokens": None, "model": model, "output": output, "parallel_tool_calls": True,
        "previous_response_id": None, "reasoning": {"effort": "medium", "summary": "auto"}, "store": False,
        "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def _responses_usage(s: Script) -> dict:
    return {"input_tokens": s.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": s.completion_tokens, "output_tokens_details": {"reasoning_tokens": s.reasoning_tokens},
            "total_tokens": s.prompt_tokens + s.completion_tokens}


class _Ids:
    """The ids one response uses, shared by its streaming and final forms."""

    def __init__(self) -> None:
        self.resp, self.reasoning, self.msg = new_id("resp_"), new_id("rs_"), new_id("msg_")
        self.fc, self.call = new_id("fc_"), new_id("call_")


def _reasoning_item(s: Script, ids: _Ids) -> dict:
    return {"id": ids.reasoning, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": s.reasoning_text}]}


def _output_text(text: str) -> dict:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _answer_item(s: Script, ids: _Ids, status: str = "completed") -> dict:
    done = status == "completed"
    if s.tool:
        return {"id": ids.fc, "type": "function_call", "status": status,
                "arguments": s.tool.arguments_json if done else "", "call_id": ids.call, "name": s.tool.name}
    return {"id": ids.msg, "type": "message", "status": status,
            "content": [_output_text(s.content_text)] if done else [], "role": "assistant"}


def response_object(s: Script, model: str) -> dict:
    ids = _Ids()
    return _response(ids.resp, model, "completed", [_reasoning_item(s, ids), _answer_item(s, ids)],
                     _responses_usage(s))


def response_events(s: Script, model: str) -> list[bytes]:
    """The Responses API event stream (``event:`` + ``data:`` frames) in the order the real API sends them."""
    ids = _Ids()
    frames: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        frames.append(sse({"type": kind, "sequence_number": len(frames), **fields}, event=kind))

    emit("response.created", response=_response(ids.resp, model, "in_progress", [], None))
    emit("response.in_progress", response=_response(ids.resp, model, "in_progress", [], None))
    # Output 0: the reasoning summary.
    rs = {"item_id": ids.reasoning, "output_index": 0}
    emit("response.output_item.added", output_index=0, item={"id": ids.reasoning, "type": "reasoning", "summary": []})
    emit("response.reasoning_summary_part.added", **rs, summary_index=0, part={"type": "summary_text", "text": ""})
    for piece in s.reasoning:
        emit("response.reasoning_summary_text.delta", **rs, summary_index=0, delta=piece)
    emit("response.reasoning_summary_text.done", **rs, summary_index=0, text=s.reasoning_text)
    emit("response.reasoning_summary_part.done", **rs, summary_index=0,
         part={"type": "summary_text", "text": s.reasoning_text})
    emit("response.output_item.done", output_index=0, item=_reasoning_item(s, ids))
    # Output 1: the answer message, or a function call.
    emit("response.output_item.added", output_index=1, item=_answer_item(s, ids, "in_progress"))
    if s.tool:
        fc = {"item_id": ids.fc, "output_index": 1}
        for piece in s.tool.arguments:
            emit("response.function_call_arguments.delta", **fc, delta=piece)
        emit("response.function_call_arguments.done", **fc, arguments=s.tool.arguments_json)
    else:
        msg = {"item_id": ids.msg, "output_index": 1, "content_index": 0}
        emit("response.content_part.added", **msg, part=_output_text(""))
        for piece in s.content:
            emit("response.output_text.delta", **msg, delta=piece, logprobs=[])
        emit("response.output_text.done", **msg, text=s.content_text, logprobs=[])
        emit("response.content_part.done", **msg, part=_output_text(s.content_text))
    emit("response.output_item.done", output_index=1, item=_answer_item(s, ids))
    emit("response.completed", response=_response(
        ids.resp, model, "completed", [_reasoning_item(s, ids), _answer_item(s, ids)], _responses_usage(s)))
    return frames


# --- Misc -------------------------------------------------------------------------------------------------------

def models_list(models: list[str]) -> dict:
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                        "owned_by": "reasoning-gateway-devtools"} for m in models]}


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_exceeded"}


def error_body(status: int, message: str) -> dict:
    return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"), "param": None,
                      "code": None}}
