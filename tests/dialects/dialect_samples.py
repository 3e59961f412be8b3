"""Wire samples shaped like real upstream output (field order, ids, usage blocks, keep-alives), shared by the tests.

Each streaming sample comes with the texts a client would assemble from it per stream key, written out by hand,
so the tests compare the codec against what the wire means rather than against the codec itself.
"""
from __future__ import annotations

# DeepSeek-style reasoning stream: `reasoning_content` then `content`, \u-escaped non-ASCII (é and a surrogate
# pair for 😀), a keep-alive comment, usage in the last chunk, then [DONE].
CHAT_REASONING_STREAM = (
    b': keep-alive\n\n'
    b'data: {"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1718000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_7e0991cad4","choices":[{"index":0,"delta":{"role":"assistant","content":null,'
    b'"reasoning_content":""},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1718000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_7e0991cad4","choices":[{"index":0,"delta":{"content":null,"reasoning_content":'
    b'"The user Ren\\u00e9 wrote from "},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1718000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_7e0991cad4","choices":[{"index":0,"delta":{"content":null,"reasoning_content":'
    b'"rene@example.com \\ud83d\\ude00 and"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1718000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_7e0991cad4","choices":[{"index":0,"delta":{"content":null,"reasoning_content":'
    b'" wants a \\"summary\\".\\n"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1718000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_7e0991cad4","choices":[{"index":0,"delta":{"content":"Bonjour ",'
    b'"reasoning_content":null},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1718000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_7e0991cad4","choices":[{"index":0,"delta":{"content":"Ren\xc3\xa9 \xe2\x80\x94 done.",'
    b'"reasoning_content":null},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1718000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_7e0991cad4","choices":[{"index":0,"delta":{"content":""},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":40,"total_tokens":52,'
    b'"completion_tokens_details":{"reasoning_tokens":28}}}\n\n'
    b'data: [DONE]\n\n'
)
CHAT_REASONING_TEXTS = {
    "reasoning:0": 'The user René wrote from rene@example.com 😀 and wants a "summary".\n',
    "content:0": "Bonjour René — done.",
}

# gpt-4o-style tool call stream, two parallel calls, CRLF line endings.
CHAT_TOOLS_STREAM = (
    'data: {"id":"chatcmpl-AqX","object":"chat.completion.chunk","created":1718000100,"model":"gpt-4o-2024-08-06",'
    '"system_fingerprint":"fp_f33640a400","choices":[{"index":0,"delta":{"role":"assistant","content":null,'
    '"tool_calls":[{"index":0,"id":"call_Wx1","type":"function","function":{"name":"get_weather","arguments":""}}],'
    '"refusal":null},"logprobs":null,"finish_reason":null}]}\r\n\r\n'
    'data: {"id":"chatcmpl-AqX","object":"chat.completion.chunk","created":1718000100,"model":"gpt-4o-2024-08-06",'
    '"system_fingerprint":"fp_f33640a400","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    '{"arguments":"{\\"city\\": \\"Z\\u00fcr"}}]},"logprobs":null,"finish_reason":null}]}\r\n\r\n'
    'data: {"id":"chatcmpl-AqX","object":"chat.completion.chunk","created":1718000100,"model":"gpt-4o-2024-08-06",'
    '"system_fingerprint":"fp_f33640a400","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    '{"arguments":"ich\\"}"}}]},"logprobs":null,"finish_reason":null}]}\r\n\r\n'
    'data: {"id":"chatcmpl-AqX","object":"chat.completion.chunk","created":1718000100,"model":"gpt-4o-2024-08-06",'
    '"system_fingerprint":"fp_f33640a400","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_Yz2",'
    '"type":"function","function":{"name":"get_time","arguments":"{\\"tz\\":"}}]},"logprobs":null,'
    '"finish_reason":null}]}\r\n\r\n'
    'data: {"id":"chatcmpl-AqX","object":"chat.completion.chunk","created":1718000100,"model":"gpt-4o-2024-08-06",'
    '"system_fingerprint":"fp_f33640a400","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":'
    '{"arguments":" \\"CET\\"}"}}]},"logprobs":null,"finish_reason":null}]}\r\n\r\n'
    'data: {"id":"chatcmpl-AqX","object":"chat.completion.chunk","created":1718000100,"model":"gpt-4o-2024-08-06",'
    '"system_fingerprint":"fp_f33640a400","choices":[{"index":0,"delta":{},"logprobs":null,'
    '"finish_reason":"tool_calls"}]}\r\n\r\n'
    'data: [DONE]\r\n\r\n'
).encode()
CHAT_TOOLS_TEXTS = {"tool_args:0:0": '{"city": "Zürich"}', "tool_args:0:1": '{"tz": "CET"}'}

# vLLM-style stream with n=2: both choices interleaved, `reasoning` as a plain string, `data:` without a space.
CHAT_TWO_CHOICES_STREAM = (
    b'data:{"id":"cmpl-b2","object":"chat.completion.chunk","created":1718000200,"model":"Qwen/QwQ-32B",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","reasoning":"Plan A"},"logprobs":null,"finish_reason":null},'
    b'{"index":1,"delta":{"role":"assistant","reasoning":"Plan B"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data:{"id":"cmpl-b2","object":"chat.completion.chunk","created":1718000200,"model":"Qwen/QwQ-32B",'
    b'"choices":[{"index":1,"delta":{"content":"Second"},"logprobs":null,"finish_reason":null},'
    b'{"index":0,"delta":{"content":"First"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data:[DONE]\n\n'
)
CHAT_TWO_CHOICES_TEXTS = {
    "reasoning:0:reasoning": "Plan A", "reasoning:1:reasoning": "Plan B", "content:0": "First", "content:1": "Second",
}

CHAT_BODY = (
    b'{\n  "id": "chatcmpl-B9", "object": "chat.completion", "created": 1718000300, "model": "o3-mini",\n'
    b'  "choices": [\n    {"index": 0, "message": {"role": "assistant", "content": "The answer is 42.",\n'
    b'      "reasoning_content": "Compute 6\\u00d77.", "refusal": null, "tool_calls": [{"id": "call_1",\n'
    b'      "type": "function", "function": {"name": "calc", "arguments": "{\\"expr\\":\\"6*7\\"}"}}]},\n'
    b'     "logprobs": null, "finish_reason": "stop"},\n'
    b'    {"index": 1, "message": {"role": "assistant", "content": [{"type": "text", "text": "Also 42."}]},\n'
    b'     "finish_reason": "stop"}\n  ],\n'
    b'  "usage": {"prompt_tokens": 9, "completion_tokens": 30, "total_tokens": 39},\n'
    b'  "service_tier": "default"\n}\n'
)

RESPONSES_STREAM = (
    'event: response.created\n'
    'data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_67c","object":"response",'
    '"created_at":1741290958,"status":"in_progress","model":"o4-mini-2025-04-16","output":[],"usage":null}}\n\n'
    'event: response.output_item.added\n'
    'data: {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"rs_1",'
    '"type":"reasoning","summary":[]}}\n\n'
    'event: response.reasoning_summary_part.added\n'
    'data: {"type":"response.reasoning_summary_part.added","sequence_number":2,"item_id":"rs_1","output_index":0,'
    '"summary_index":0,"part":{"type":"summary_text","text":""}}\n\n'
    'event: response.reasoning_summary_text.delta\n'
    'data: {"type":"response.reasoning_summary_text.delta","sequence_number":3,"item_id":"rs_1","output_index":0,'
    '"summary_index":0,"delta":"**Checking** the caf\\u00e9 "}\n\n'
    'event: response.reasoning_summary_text.delta\n'
    'data: {"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":"rs_1","output_index":0,'
    '"summary_index":0,"delta":"hours"}\n\n'
    'event: response.reasoning_summary_text.done\n'
    'data: {"type":"response.reasoning_summary_text.done","sequence_number":5,"item_id":"rs_1","output_index":0,'
    '"summary_index":0,"text":"**Checking** the café hours"}\n\n'
    'event: response.output_item.added\n'
    'data: {"type":"response.output_item.added","sequence_number":6,"output_index":1,"item":{"id":"msg_2",'
    '"type":"message","status":"in_progress","content":[],"role":"assistant"}}\n\n'
    'event: response.output_text.delta\n'
    'data: {"type":"response.output_text.delta","sequence_number":7,"item_id":"msg_2","output_index":1,'
    '"content_index":0,"delta":"Open ","logprobs":[]}\n\n'
    'event: response.output_text.delta\n'
    'data: {"type":"response.output_text.delta","sequence_number":8,"item_id":"msg_2","output_index":1,'
    '"content_index":0,"delta":"9\u20135.","logprobs":[]}\n\n'
    'event: response.output_text.done\n'
    'data: {"type":"response.output_text.done","sequence_number":9,"item_id":"msg_2","output_index":1,'
    '"content_index":0,"text":"Open 9\u20135.","logprobs":[]}\n\n'
    'event: response.output_item.added\n'
    'data: {"type":"response.output_item.added","sequence_number":10,"output_index":2,"item":{"id":"fc_3",'
    '"type":"function_call","status":"in_progress","arguments":"","call_id":"call_9","name":"book"}}\n\n'
    'event: response.function_call_arguments.delta\n'
    'data: {"type":"response.function_call_arguments.delta","sequence_number":11,"item_id":"fc_3",'
    '"output_index":2,"delta":"{\\"at\\":\\"9am\\"}"}\n\n'
    'event: response.function_call_arguments.done\n'
    'data: {"type":"response.function_call_arguments.done","sequence_number":12,"item_id":"fc_3",'
    '"output_index":2,"arguments":"{\\"at\\":\\"9am\\"}"}\n\n'
    'event: response.completed\n'
    'data: {"type":"response.completed","sequence_number":13,"response":{"id":"resp_67c","object":"response",'
    '"status":"completed","model":"o4-mini-2025-04-16","output":[{"id":"rs_1","type":"reasoning","summary":'
    '[{"type":"summary_text","text":"**Checking** the caf\u00e9 hours"}]},{"id":"msg_2","type":"message",'
    '"status":"completed","role":"assistant","content":[{"type":"output_text","text":"Open 9\u20135.",'
    '"annotations":[]}]},{"id":"fc_3","type":"function_call","arguments":"{\\"at\\":\\"9am\\"}",'
    '"call_id":"call_9","name":"book"}],"usage":{"input_tokens":20,"output_tokens":50,"total_tokens":70}}}\n\n'
).encode()
RESPONSES_TEXTS = {
    "reasoning:0:summary0": "**Checking** the café hours",
    "reasoning:0:summary0:full": "**Checking** the café hours" * 2,  # the .done event and response.completed
    "content:1:0": "Open 9–5.",
    "content:1:0:full": "Open 9–5." * 2,
    "tool_args:2": '{"at":"9am"}',
    "tool_args:2:full": '{"at":"9am"}' * 2,
}

RESPONSES_BODY = (
    b'{"id":"resp_1","object":"response","status":"completed","model":"o3","output":['
    b'{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Think"}],'
    b'"content":[{"type":"reasoning_text","text":"Deep"}]},'
    b'{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]},'
    b'{"id":"fc_1","type":"function_call","call_id":"c1","name":"f","arguments":"{}"}],"usage":{"total_tokens":3}}'
)

ANTHROPIC_STREAM = (
    'event: message_start\n'
    'data: {"type":"message_start","message":{"id":"msg_01XFD","type":"message","role":"assistant","content":[],'
    '"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,'
    '"output_tokens":1}}}\n\n'
    'event: content_block_start\n'
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
    'event: ping\n'
    'data: {"type": "ping"}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Card 4111 1111"}}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" 1111 1111 \u2713"}}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa"}}\n\n'
    'event: content_block_stop\n'
    'data: {"type":"content_block_stop","index":0}\n\n'
    'event: content_block_start\n'
    'data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I\'ll look that up \\ud83d\\ude80"}}\n\n'
    'event: content_block_stop\n'
    'data: {"type":"content_block_stop","index":1}\n\n'
    'event: content_block_start\n'
    'data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1","name":'
    '"lookup","input":{}}}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"q\\": \\"ca"}}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"rd\\"}"}}\n\n'
    'event: content_block_stop\n'
    'data: {"type":"content_block_stop","index":2}\n\n'
    'event: message_delta\n'
    'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}\n\n'
    'event: message_stop\n'
    'data: {"type":"message_stop"}\n\n'
).encode()
ANTHROPIC_TEXTS = {
    "reasoning:block0": "Card 4111 1111 1111 1111 ✓",
    "content:block1": "I'll look that up 🚀",
    "tool_args:block2": '{"q": "card"}',
}

ANTHROPIC_BODY = (
    b'{"id":"msg_01A","type":"message","role":"assistant","model":"claude-opus-4-20250514","content":['
    b'{"type":"thinking","thinking":"User is bob@example.com","signature":"Ery1"},'
    b'{"type":"redacted_thinking","data":"EmwKAhgB"},'
    b'{"type":"text","text":"Hello Bob","citations":null},'
    b'{"type":"tool_use","id":"toolu_1","name":"send","input":{"to":"bob@example.com","n":2}}],'
    b'"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":20}}'
)


# Request bodies: system prompts, multi-part user turns, reasoning and tool calls handed back in the history.
CHAT_REQUEST = {
    "model": "deepseek-reasoner",
    "stream": True,
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Email bob@example.com"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": None, "reasoning_content": "think",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "send", "arguments": "{\"to\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"},
        {"role": "user", "content": ""},
    ],
}
RESPONSES_REQUEST = {
    "model": "o4-mini",
    "instructions": "Be kind.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Hi CUST-12345678"}]},
        {"role": "developer", "content": "Plain string content"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "sum"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a\":1}"},
        {"type": "function_call_output", "call_id": "c", "output": "result text"},
    ],
}
ANTHROPIC_REQUEST = {
    "model": "claude-sonnet-4",
    "system": [{"type": "text", "text": "Policy text", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "What is 4111 1111 1111 1111?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "card"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "found it"}]},
            {"type": "tool_result", "tool_use_id": "t2", "content": "string result"},
        ]},
    ],
}



def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed: they give empty chunks)."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def decode_chunks(codec, chunks: list[bytes]) -> list[list]:
    """Feed ``chunks`` as a proxy would (end_stream on the last); one list of events per call."""
    if not chunks:
        chunks = [b""]
    return [codec.decode(chunk, i == len(chunks) - 1) for i, chunk in enumerate(chunks)]


def texts_by_key(events) -> dict[str, str]:
    """Delta texts concatenated per stream key, in order: what a client assembles per logical stream."""
    out: dict[str, str] = {}
    for event in events:
        for delta in event.deltas:
            out[delta.stream_key] = out.get(delta.stream_key, "") + delta.text
    return out
