"""Request-side texts: found with their paths in all three dialects, and rewritable in place."""
from __future__ import annotations

import copy
import json

from gateway.dialects.base import CONTENT, REASONING, TOOL_ARGS
from gateway.dialects.requests import request_texts, set_request_text
from tests.dialects.dialect_samples import ANTHROPIC_REQUEST, CHAT_REQUEST, RESPONSES_REQUEST

def summary(deltas):
    return [(d.channel, d.text, d.path, d.stream_key) for d in deltas]


def test_chat_request_texts():
    assert summary(request_texts("/v1/chat/completions", CHAT_REQUEST)) == [
        (CONTENT, "You are terse.", ("messages", 0, "content"), "system"),
        (CONTENT, "Email bob@example.com", ("messages", 1, "content", 0, "text"), "user"),
        (REASONING, "think", ("messages", 2, "reasoning_content"), "assistant"),
        (TOOL_ARGS, '{"to":1}', ("messages", 2, "tool_calls", 0, "function", "arguments"), "assistant"),
        (CONTENT, "sent", ("messages", 3, "content"), "tool"),
    ]


def test_responses_request_texts():
    assert summary(request_texts("/v1/responses", RESPONSES_REQUEST)) == [
        (CONTENT, "Be kind.", ("instructions",), "system"),
        (CONTENT, "Hi CUST-12345678", ("input", 0, "content", 0, "text"), "user"),
        (CONTENT, "Plain string content", ("input", 1, "content"), "developer"),
        (REASONING, "sum", ("input", 2, "summary", 0, "text"), "assistant"),
        (TOOL_ARGS, '{"a":1}', ("input", 3, "arguments"), "assistant"),
        (CONTENT, "result text", ("input", 4, "output"), "tool"),
    ]
    assert summary(request_texts("/v1/responses", {"input": "just text"})) == [
        (CONTENT, "just text", ("input",), "user"),
    ]


def test_anthropic_request_texts():
    assert summary(request_texts("/v1/messages", ANTHROPIC_REQUEST)) == [
        (CONTENT, "Policy text", ("system", 0, "text"), "system"),
        (CONTENT, "What is 4111 1111 1111 1111?", ("messages", 0, "content"), "user"),
        (REASONING, "hmm", ("messages", 1, "content", 0, "thinking"), "assistant"),
        (TOOL_ARGS, '{"q": "card"}', ("messages", 1, "content", 1, "input"), "assistant"),
        (CONTENT, "found it", ("messages", 2, "content", 0, "content", 0, "text"), "tool"),
        (CONTENT, "string result", ("messages", 2, "content", 1, "content"), "tool"),
    ]
    assert summary(request_texts("/v1/messages", {"system": "S", "messages": []})) == [
        (CONTENT, "S", ("system",), "system"),
    ]


def test_set_request_text_rewrites_in_place():
    body = copy.deepcopy(ANTHROPIC_REQUEST)
    deltas = request_texts("/v1/messages", body)
    set_request_text(body, deltas[1], "What is [CARD]?")
    set_request_text(body, deltas[3], '{"q": "[MASKED]"}')
    assert body["messages"][0]["content"] == "What is [CARD]?" and deltas[1].text == "What is [CARD]?"
    assert body["messages"][1]["content"][1]["input"] == {"q": "[MASKED]"}  # still an object
    rest = copy.deepcopy(ANTHROPIC_REQUEST)
    rest["messages"][0]["content"] = "What is [CARD]?"
    rest["messages"][1]["content"][1]["input"] = {"q": "[MASKED]"}
    assert json.dumps(body, sort_keys=True) == json.dumps(rest, sort_keys=True)


def test_unknown_paths_and_odd_bodies_give_nothing():
    assert request_texts("/v1/models", {"messages": [{"role": "user", "content": "x"}]}) == []
    assert request_texts("/v1/chat/completions", ["not", "an", "object"]) == []
    assert request_texts("/v1/chat/completions", {"messages": "oops"}) == []
