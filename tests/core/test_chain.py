"""The filter chain driven directly, no sockets."""
import asyncio

import pytest

from gateway.dialects.edit import set_delta_text
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.base import CONTINUE, Filter, Park, Respond
from gateway.filters.chain import FilterChain, PassThrough


def make_exchange(path="/v1/chat/completions", **kw) -> Exchange:
    return Exchange(method="POST", path=path, **kw)


class Recorder(Filter):
    def __init__(self, name, calls, verdict=CONTINUE):
        self.name, self.calls, self.verdict = name, calls, verdict

    async def on_request(self, ex):
        self.calls.append(("request", self.name))
        return self.verdict

    def on_response_headers(self, ex):
        self.calls.append(("headers", self.name))

    def on_complete(self, ex):
        self.calls.append(("complete", self.name))


async def test_request_hooks_in_order_response_hooks_in_reverse():
    calls = []
    chain = FilterChain([Recorder("a", calls), Recorder("b", calls), Recorder("c", calls)])
    ex = make_exchange()
    await chain.run_request(ex)
    chain.run_response_headers(ex)
    chain.run_complete(ex)
    assert calls == [("request", "a"), ("request", "b"), ("request", "c"),
                     ("headers", "c"), ("headers", "b"), ("headers", "a"),
                     ("complete", "c"), ("complete", "b"), ("complete", "a")]


async def test_respond_stops_the_chain_with_the_local_reply():
    calls = []
    err = GatewayError(403, "policy_denied", "no")
    chain = FilterChain([Recorder("a", calls, Respond(err)), Recorder("b", calls)])
    with pytest.raises(GatewayError) as raised:
        await chain.run_request(make_exchange())
    assert raised.value is err and calls == [("request", "a")]


async def test_park_resumes_with_the_verdict_it_is_given():
    released = asyncio.Event()
    calls = []

    async def resume():
        await released.wait()
        return CONTINUE

    chain = FilterChain([Recorder("gate", calls, Park(resume, 5, GatewayError(403, "approval_pending", "x"))),
                         Recorder("after", calls)])
    task = asyncio.create_task(chain.run_request(make_exchange()))
    await asyncio.sleep(0.05)
    assert not task.done() and calls == [("request", "gate")]
    released.set()
    await task
    assert calls[-1] == ("request", "after")


async def test_park_times_out_into_its_local_reply():
    async def never():
        await asyncio.Event().wait()

    timeout_err = GatewayError(403, "approval_pending", "still waiting", extra={"approval_id": "a1"})
    chain = FilterChain([Recorder("gate", [], Park(never, 0.05, timeout_err))])
    with pytest.raises(GatewayError) as raised:
        await chain.run_request(make_exchange())
    assert raised.value.code == "approval_pending"


async def test_a_non_verdict_is_a_programming_error():
    chain = FilterChain([Recorder("bad", [], "continue")])
    with pytest.raises(TypeError, match="bad"):
        await chain.run_request(make_exchange())


def test_header_only_chains_pass_bytes_through_untouched():
    chain = FilterChain([Recorder("a", [])])
    assert not chain.rewrites_body
    assert isinstance(chain.body_transform(make_exchange()), PassThrough)


class Upper(Filter):
    """Upper-cases reasoning text: proves events reach inspecting filters and are re-encoded."""

    name = "upper"
    inspects_response = True

    def __init__(self):
        self.ends = []

    def on_response_events(self, ex, events, end_stream):
        self.ends.append(end_stream)
        for event in events:
            for delta in event.deltas:
                if delta.channel == "reasoning":
                    set_delta_text(event, delta, delta.text.upper())
        return events


def test_inspecting_filter_sees_events_chunk_by_chunk_and_changes_them():
    stream = (b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}\n\n'
              b'data: {"choices":[{"index":0,"delta":{"content":"answer"}}]}\n\n'
              b"data: [DONE]\n\n")
    upper = Upper()
    chain = FilterChain([Recorder("auth", []), upper])
    ex = make_exchange(response_content_type="text/event-stream")
    transform = chain.body_transform(ex)
    out = b"".join(transform.feed(stream[i:i + 7], False) for i in range(0, len(stream), 7))
    out += transform.feed(b"", True)
    assert b'"reasoning_content":"THINK"' in out and b'"content":"answer"' in out
    assert out.endswith(b"data: [DONE]\n\n")
    assert upper.ends[-1] is True and upper.ends.count(True) == 1


def test_completion_hook_failure_does_not_hide_the_others():
    calls = []

    class Broken(Filter):
        name = "broken"

        def on_complete(self, ex):
            raise RuntimeError("boom")

    chain = FilterChain([Recorder("a", calls), Broken()])
    chain.run_complete(make_exchange())
    assert calls == [("complete", "a")]
