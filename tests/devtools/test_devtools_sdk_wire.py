"""The fake backend speaks the real wire formats: the official openai and anthropic SDKs parse it unchanged."""
from __future__ import annotations

import anthropic
import openai
import pytest

from gateway.devtools.scripts import DEFAULT_CONTENT, DEFAULT_REASONING, PLANTED

TOOLS_CHAT = [{"type": "function", "function": {
    "name": "lookup_customer", "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"},
                                                                               "limit": {"type": "integer"}}}}}]


@pytest.fixture
def oai(backend_url):
    return openai.AsyncOpenAI(base_url=backend_url + "/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(backend_url):
    return anthropic.AsyncAnthropic(base_url=backend_url, api_key="sk-ant-test", max_retries=0)


async def test_chat_non_streaming(oai):
    completion = await oai.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}])
    message = completion.choices[0].message
    assert message.content == DEFAULT_CONTENT
    assert message.model_extra["reasoning_content"] == DEFAULT_REASONING
    assert completion.model == "m1" and completion.usage.completion_tokens_details.reasoning_tokens > 0


async def test_chat_streaming_reasoning_then_content_then_usage(oai):
    stream = await oai.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}, extra_headers={"X-Fake-Chunks": "20"})
    order, reasoning, content, finish, usage = [], "", "", None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if (piece := (choice.delta.model_extra or {}).get("reasoning_content")):
                reasoning += piece
                order.append("r")
            if choice.delta.content:
                content += choice.delta.content
                order.append("c")
            finish = choice.finish_reason or finish
    assert reasoning == DEFAULT_REASONING and content == DEFAULT_CONTENT
    assert order == ["r"] * 10 + ["c"] * 10
    assert finish == "stop" and usage is not None and usage.total_tokens > 0


async def test_chat_stream_helper_with_tool_call_pieces(oai):
    async with oai.chat.completions.stream(model="m1", messages=[{"role": "user", "content": "x"}],
                                           tools=TOOLS_CHAT, extra_headers={"X-Fake-Plant": "1"}) as stream:
        arg_deltas = [e async for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = await stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup_customer" and len(arg_deltas) > 1
    assert call.function.arguments == '{"customer_id":"%s","limit":42}' % PLANTED["customer_id"]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_responses_stream_helper_and_create_stream(oai):
    async with oai.responses.stream(model="m1", input="hi") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == DEFAULT_CONTENT
    assert final.output[0].type == "reasoning" and final.output[0].summary[0].text == DEFAULT_REASONING
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.reasoning_summary_text.delta" in kinds and "response.output_text.delta" in kinds

    raw = await oai.responses.create(model="m1", input="hi", stream=True)
    text = "".join([e.delta async for e in raw if e.type == "response.output_text.delta"])
    assert text == DEFAULT_CONTENT


async def test_responses_non_streaming_and_function_call(oai):
    response = await oai.responses.create(model="m1", input="hi")
    assert response.output_text == DEFAULT_CONTENT and response.usage.output_tokens_details.reasoning_tokens > 0
    tools = [{"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}]
    async with oai.responses.stream(model="m1", input="hi", tools=tools) as stream:
        final = await stream.get_final_response()
    assert final.output[1].type == "function_call" and final.output[1].arguments == '{"city":"sample city"}'


async def test_models_list(oai):
    assert [m.id async for m in oai.models.list()] == ["fake-reasoner-1"]


async def test_anthropic_stream_helper_with_thinking(claude):
    async with claude.messages.stream(model="claude-x", max_tokens=1024, messages=[{"role": "user", "content": "q"}],
                                      thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        thinking = "".join([e.thinking async for e in stream if e.type == "thinking"])
        final = await stream.get_final_message()
    assert thinking == DEFAULT_REASONING
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature and final.content[1].text == DEFAULT_CONTENT
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 1


async def test_anthropic_raw_stream_and_non_streaming(claude):
    raw = await claude.messages.create(model="c", max_tokens=64, messages=[{"role": "user", "content": "q"}],
                                       stream=True, extra_headers={"X-Fake-Plant": "1"})
    kinds = [event.type async for event in raw]
    assert kinds[:3] == ["message_start", "content_block_start", "content_block_delta"]  # the SDK drops pings
    assert kinds[-2:] == ["message_delta", "message_stop"]
    message = await claude.messages.create(model="c", max_tokens=64, messages=[{"role": "user", "content": "q"}])
    assert message.content[0].type == "thinking" and message.content[1].text == DEFAULT_CONTENT


async def test_anthropic_tool_use_stream(claude):
    tools = [{"name": "lookup", "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}}]
    async with claude.messages.stream(model="c", max_tokens=64, tools=tools,
                                      messages=[{"role": "user", "content": "q"}]) as stream:
        final = await stream.get_final_message()
    assert final.content[1].type == "tool_use" and final.content[1].input == {"id": "sample id"}
    assert final.stop_reason == "tool_use"


async def test_error_status_knob_in_each_dialect(oai, claude):
    with pytest.raises(openai.RateLimitError) as oerr:
        await oai.chat.completions.create(model="m", messages=[], extra_headers={"X-Fake-Status": "429"})
    assert oerr.value.body["type"] == "rate_limit_exceeded"
    with pytest.raises(anthropic.InternalServerError) as aerr:
        await claude.messages.create(model="c", max_tokens=8, messages=[], extra_headers={"X-Fake-Status": "500"})
    assert aerr.value.body["error"]["type"] == "api_error"
