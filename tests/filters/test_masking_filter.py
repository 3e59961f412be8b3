"""The masking filter driven through the real chain, codecs, catalog and masker, without sockets."""
from __future__ import annotations

import json
import random

import pytest

from gateway.catalog import CatalogRegistry, ExchangeMaskers, PolicyMaskers
from gateway.dialects.sse import SseDecoder
from gateway.exchange import Exchange
from gateway.filters.base import StreamTerminated
from gateway.filters.chain import FilterChain
from gateway.filters.masking import MaskingFilter
from gateway.filters.policy import DECISION, POLICY, PolicyFilter
from gateway.policy.reload import PolicyStore
from gateway.principal import Principal

POLICY_YAML = """
detectors:
  - {name: customer_id, regex: '\\bCUST-\\d{8}\\b', label: CUSTOMER_ID}
rules:
  - {name: ci, when: {groups: [ci-bots]}, reasoning: drop}
  - {name: trusted, when: {groups: [trusted]}, reasoning: pass}
  - {name: no-secrets, when: {request_detects: ["secrets.*"]}, action: deny, message: no secrets please}
  - name: approval
    when: {request_detects: [customer_id]}
    action: require_approval
    approval: {approver_groups: [sre]}
masking:
  response: ["pii.*", "secrets.*", customer_id]
  style: label
"""
REASONING = "The contact is jane.doe@example.com and the card 4111 1111 1111 1111 for CUST-00012345."
ANSWER = "Mail jane.doe@example.com today."


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_YAML)
    s = PolicyStore(path, CatalogRegistry())
    s.load()
    return s


@pytest.fixture
def chain(store):
    maskers = PolicyMaskers(hmac_key=None, max_hold_chars=4096, max_hold_s=60)

    def engine_for(ex):
        policy = ex.annotations[POLICY]
        return ExchangeMaskers(maskers, policy), policy.masking.response

    return FilterChain([PolicyFilter(store, lambda p, t, n: maskers.masker(p, n).mask_text(t)),
                        MaskingFilter(engine_for)])


def one_shot(text: str) -> str:
    return text.replace("jane.doe@example.com", "[EMAIL]").replace("4111 1111 1111 1111", "[CREDIT_CARD]") \
        .replace("CUST-00012345", "[CUSTOMER_ID]")


def chat_stream(reasoning: str, answer: str, piece: int) -> bytes:
    def chunk(delta, finish=None):
        return "data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"reasoning_content": reasoning[i:i + piece]}) for i in range(0, len(reasoning), piece)]
    out += [chunk({"content": answer[i:i + piece]}) for i in range(0, len(answer), piece)]
    out += [chunk({}, "stop"), "data: [DONE]\n\n"]
    return "".join(out).encode()


async def run(chain, body: bytes, groups=("eng",), path="/v1/chat/completions", splits=7, seed=0,
              content_type="text/event-stream") -> bytes:
    ex = Exchange(method="POST", path=path, principal=Principal(sub="u", groups=tuple(groups)),
                  body=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode())
    await chain.run_request(ex)
    ex.response_content_type = content_type
    transform = chain.body_transform(ex)
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(body):
        n = rng.randint(1, splits)
        out.append(transform.feed(body[i:i + n], False))
        i += n
    out.append(transform.feed(b"", True))
    chain.run_complete(ex)
    return b"".join(out)


def joined(body: bytes) -> tuple[str, str, list[dict]]:
    events = [e for e in SseDecoder().feed(body) if e.data and e.data != "[DONE]"]
    payloads = [json.loads(e.data) for e in events]
    reasoning = "".join(p["choices"][0]["delta"].get("reasoning_content") or "" for p in payloads)
    content = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads)
    return reasoning, content, payloads


@pytest.mark.parametrize("piece", [1, 3, 17])
@pytest.mark.parametrize("seed", range(3))
async def test_split_values_are_masked_and_equal_one_shot(chain, piece, seed):
    body = await run(chain, chat_stream(REASONING, ANSWER, piece), seed=seed)
    reasoning, content, payloads = joined(body)
    assert reasoning == one_shot(REASONING) and content == one_shot(ANSWER)
    # Held reasoning is released before the answer starts, held answer before the finish chunk.
    kinds = [("r" if p["choices"][0]["delta"].get("reasoning_content") else
              "c" if p["choices"][0]["delta"].get("content") else "-") for p in payloads]
    assert "r" not in "".join(kinds)[kinds.index("c"):]
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert body.endswith(b"data: [DONE]\n\n")


async def test_trusted_callers_get_reasoning_unmasked_but_content_masked(chain):
    reasoning, content, _ = joined(await run(chain, chat_stream(REASONING, ANSWER, 4), groups=["trusted"]))
    assert reasoning == REASONING and content == one_shot(ANSWER)


async def test_ci_bots_get_no_reasoning(chain):
    body = await run(chain, chat_stream(REASONING, ANSWER, 4), groups=["ci-bots"])
    assert b"reasoning" not in body and joined(body)[1] == one_shot(ANSWER)


async def test_anthropic_held_text_goes_out_before_the_block_stops(chain):
    def ev(kind, data):
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"
    text = "Write to jane.doe@example.com"
    parts = [ev("message_start", {"message": {"id": "m", "type": "message", "role": "assistant", "content": []}}),
             ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})]
    parts += [ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text[i:i + 2]}})
              for i in range(0, len(text), 2)]
    parts += [ev("content_block_stop", {"index": 0}), ev("message_stop", {})]
    body = await run(chain, "".join(parts).encode(), path="/v1/messages")
    events = [json.loads(e.data) for e in SseDecoder().feed(body)]
    stop = next(i for i, e in enumerate(events) if e["type"] == "content_block_stop")
    deltas = [e["delta"]["text"] for e in events[:stop] if e["type"] == "content_block_delta"]
    assert "".join(deltas) == "Write to [EMAIL]"
    assert not any(e["type"] == "content_block_delta" for e in events[stop:])


async def test_whole_json_bodies_are_masked_at_once(chain):
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER,
                                                           "reasoning_content": REASONING}}]}).encode()
    out = json.loads(await run(chain, body, content_type="application/json"))
    assert out["choices"][0]["message"]["content"] == one_shot(ANSWER)
    assert out["choices"][0]["message"]["reasoning_content"] == one_shot(REASONING)


async def test_a_masking_failure_terminates_the_stream(store):
    class Broken:
        def feed(self, text):
            raise RuntimeError("engine bug")

    class BrokenEngine:
        def stream(self, names):
            return Broken()

        def counts(self, masker):
            return {}

    chain = FilterChain([PolicyFilter(store), MaskingFilter(lambda ex: (BrokenEngine(), frozenset({"pii.email"})))])
    with pytest.raises(StreamTerminated):
        await run(chain, chat_stream(REASONING, ANSWER, 4))


async def test_policy_decisions(chain):
    def ex_for(content, groups=("eng",)):
        return Exchange(method="POST", path="/v1/chat/completions", principal=Principal(sub="u", groups=groups),
                        body=json.dumps({"model": "m", "messages": [{"role": "user", "content": content}]}).encode())
    from gateway.errors import GatewayError

    with pytest.raises(GatewayError) as denied:
        await chain.run_request(ex_for("key AKIA4QZ7XW2JH5RT3KLM"))
    assert denied.value.code == "policy_denied" and denied.value.message == "no secrets please"
    with pytest.raises(GatewayError) as parked:
        await chain.run_request(ex_for("about CUST-00012345"))
    assert parked.value.code == "approval_unavailable"
    ok = ex_for("hello")
    await chain.run_request(ok)
    assert ok.annotations[DECISION].action == "allow" and ok.decision == "allow"


async def test_pieces_read_together_are_masked_together_and_keep_their_events(chain):
    source = chat_stream(REASONING, ANSWER, 2)
    body = await run(chain, source, splits=len(source))  # the whole stream arrives in one read
    reasoning, content, payloads = joined(body)
    assert reasoning == one_shot(REASONING) and content == one_shot(ANSWER)
    # No event is lost; at most one copy per stream carries the tail held back until the stream ended.
    assert len(joined(source)[2]) <= len(payloads) <= len(joined(source)[2]) + 2
