"""Policy and masking through real processes: SDK clients -> gateway (policies on) -> fake backend.

The backend plants fake PII and secrets in reasoning and answers and cuts the text into many small chunks, so
planted values are split across SSE events (and, as TCP delivers them, across reads).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import anthropic
import openai
import pytest

from gateway.devtools.scripts import PLANTED
from tests.e2e.helpers import backend_last, eventually, metric, scrape, sse_data
from tests.support import Proc, gateway_config, start_gateway, write_config

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PLANT = {"X-Fake-Plant": "1", "X-Fake-Chunks": "300"}  # ~1-2 characters per chunk
CHAT = {"model": "fake-reasoner-1", "messages": [{"role": "user", "content": "Why did the refund fail?"}]}


def _prefix_leaks(text: str) -> list[str]:
    """Planted values, or any prefix of at least half of one, found in ``text``."""
    leaks = []
    for value in PLANTED.values():
        if value[: (len(value) + 1) // 2] in text:
            leaks.append(value)
    return leaks


@pytest.fixture(scope="module")
def masked_gateway(issuer, backend):
    proc, url = start_gateway(gateway_config(issuer.url, backend, policies={"path": str(POLICIES)},
                                             approvals={"hold_s": 0.3}))
    yield url
    proc.stop()


def test_openai_stream_reasoning_and_content_are_masked_even_when_split(masked_gateway, issuer):
    client = openai.OpenAI(base_url=masked_gateway + "/v1", api_key=issuer.mint("alice", ["engineers"]))
    reasoning, content = [], []
    stream = client.chat.completions.create(**CHAT, stream=True, extra_headers=PLANT)
    chunks = 0
    for chunk in stream:
        chunks += 1
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning.append((delta.model_extra or {}).get("reasoning_content") or "")
            content.append(delta.content or "")
    reasoning_text, content_text = "".join(reasoning), "".join(content)
    assert chunks > 200  # the values really were split across many events
    assert not _prefix_leaks(reasoning_text) and not _prefix_leaks(content_text)
    for label in ("[EMAIL]", "[PHONE]", "[CREDIT_CARD]", "[AWS_ACCESS_KEY]", "[CUSTOMER_ID]"):
        assert label in reasoning_text
    assert "[EMAIL]" in content_text and "[CUSTOMER_ID]" in content_text
    # Streamed masking equals masking the whole answer at once (the non-streaming response).
    whole = client.chat.completions.create(**CHAT, extra_headers=PLANT).choices[0].message
    assert whole.model_extra["reasoning_content"] == reasoning_text
    assert whole.content == content_text


def test_anthropic_thinking_deltas_are_masked(masked_gateway, issuer):
    client = anthropic.Anthropic(base_url=masked_gateway, api_key="unused",
                                 default_headers={"Authorization": f"Bearer {issuer.mint('alice', ['eng'])}"})
    with client.messages.stream(model="fake-reasoner-1", max_tokens=512, extra_headers=PLANT,
                                thinking={"type": "enabled", "budget_tokens": 256},
                                messages=[{"role": "user", "content": "Why did the refund fail?"}]) as stream:
        thinking = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    assert "[EMAIL]" in thinking and not _prefix_leaks(thinking)
    blocks = {b.type: b for b in final.content}
    assert not _prefix_leaks(blocks["thinking"].thinking) and not _prefix_leaks(blocks["text"].text)
    assert "[CUSTOMER_ID]" in blocks["text"].text


async def test_ci_bots_get_no_reasoning_field_or_event(masked_gateway, issuer, http):
    headers = {"Authorization": f"Bearer {issuer.mint('ci-runner', ['ci-bots'])}", **PLANT}
    async with http.post(masked_gateway + "/v1/chat/completions", json={**CHAT, "stream": True},
                         headers=headers) as resp:
        body = await resp.read()
    assert resp.status == 200 and body.endswith(b"data: [DONE]\n\n")
    assert b"reasoning" not in body and "[CUSTOMER_ID]" in body.decode()
    msg = {"model": "fake-reasoner-1", "max_tokens": 256, "stream": True,
           "thinking": {"type": "enabled", "budget_tokens": 128}, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(masked_gateway + "/v1/messages", json=msg,
                         headers={**headers, "anthropic-version": "2023-06-01"}) as resp:
        body = await resp.read()
    assert resp.status == 200 and b"thinking" not in body and b"message_stop" in body


async def test_secret_in_prompt_is_denied_in_the_clients_dialect(masked_gateway, issuer, http, backend):
    headers = {"Authorization": f"Bearer {issuer.mint('bob', ['engineers'])}"}
    prompt = "deploy with AKIA4QZ7XW2JH5RT3KLM please"
    before = await backend_last(backend)
    async with http.post(masked_gateway + "/v1/chat/completions", headers=headers,
                         json={**CHAT, "messages": [{"role": "user", "content": prompt}]}) as resp:
        body = await resp.json()
    assert resp.status == 403 and body["error"]["code"] == "policy_denied"
    assert "credential" in body["error"]["message"]
    anthropic_body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": prompt}]}
    async with http.post(masked_gateway + "/v1/messages", headers=headers, json=anthropic_body) as resp:
        body = await resp.json()
    assert resp.status == 403 and body == {"type": "error", "error": {
        "type": "policy_denied", "message": body["error"]["message"], "rule": "secrets-in-prompt"}}
    assert await backend_last(backend) == before  # nothing was forwarded


async def test_customer_data_waits_for_approval_and_is_not_forwarded(masked_gateway, issuer, http, backend):
    before = await backend_last(backend)
    headers = {"Authorization": f"Bearer {issuer.mint('carol', ['support'])}"}
    async with http.post(masked_gateway + "/v1/chat/completions", headers=headers,
                         json={**CHAT, "messages": [{"role": "user", "content": "Why was CUST-00412345 billed?"}]}) as r:
        body = await r.json()
    assert r.status == 403 and body["error"]["code"] == "approval_pending" and body["error"]["approval_id"]
    assert int(r.headers["Retry-After"]) > 0
    assert await backend_last(backend) == before  # nothing was forwarded
    privacy = {"Authorization": f"Bearer {issuer.mint('dana', ['privacy-team'])}"}
    async with http.post(masked_gateway + "/v1/chat/completions", headers=privacy,
                         json={**CHAT, "messages": [{"role": "user", "content": "Why was CUST-00412345 billed?"}]}) as r:
        assert r.status == 200


@pytest.mark.parametrize("body,fragment", [(b'{"model": "m", "messages": [', "not valid JSON"),
                                           (b'{"model": "a", "model": "b", "messages": []}', "repeats the key")])
async def test_malformed_or_ambiguous_json_is_refused(masked_gateway, issuer, http, body, fragment):
    headers = {"Authorization": f"Bearer {issuer.mint('alice', ['eng'])}", "Content-Type": "application/json"}
    async with http.post(masked_gateway + "/v1/chat/completions", data=body, headers=headers) as resp:
        err = await resp.json()
    assert resp.status == 400 and err["error"]["code"] == "invalid_json" and fragment in err["error"]["message"]


def _policy_dir(tmp_path: Path, extra: str = "") -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    shutil.copy(POLICIES / "00-detectors.yaml", d)
    (d / "10-rules.yaml").write_text(
        "masking:\n  response: ['pii.*', 'secrets.*', customer_id]\n  request: ['pii.email']\n  style: label\n" + extra
    )
    return d


async def test_response_rule_terminates_a_stream_mid_flight(issuer, backend, http, tmp_path):
    rules = ("response_rules:\n  - name: no-customer-ids\n    when: {detects: [customer_id], channels: [reasoning]}\n"
             "    action: terminate\n    message: Customer identifiers may not be streamed.\n")
    proc, url = start_gateway(gateway_config(issuer.url, backend, policies={"path": str(_policy_dir(tmp_path, rules))}))
    try:
        late_id = "Let me think about the refund step by step. " * 6 + "The account is CUST-00012345, so"
        headers = {"Authorization": f"Bearer {issuer.mint('alice', ['eng'])}", "X-Fake-Chunks": "120",
                   "X-Fake-Reasoning": late_id}
        async with http.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers) as resp:
            body = await resp.read()
        assert resp.status == 200
        events = sse_data(body)
        error = json.loads(events[-1])["error"]
        assert error["code"] == "stream_terminated" and error["rule"] == "no-customer-ids"
        assert len(events) > 2 and "[DONE]" not in events  # it was cut mid-flight, after some events
        assert "CUST-0001" not in body.decode()
        client = openai.OpenAI(base_url=url + "/v1", api_key=issuer.mint("alice", ["eng"]))
        with pytest.raises(openai.APIError):
            for _ in client.chat.completions.create(**CHAT, stream=True, extra_headers=headers):
                pass
    finally:
        proc.stop()


async def test_request_masking_masks_the_prompt_before_forwarding(issuer, backend, http, tmp_path):
    proc, url = start_gateway(gateway_config(issuer.url, backend, policies={"path": str(_policy_dir(tmp_path))}))
    try:
        headers = {"Authorization": f"Bearer {issuer.mint('alice', ['eng'])}"}
        prompt = {"model": "m", "messages": [{"role": "user", "content": "mail jane.doe@example.com today"}]}
        async with http.post(url + "/_test/echo", json=prompt, headers=headers) as resp:
            assert resp.status == 200
        # /_test/echo is not a known dialect path: its body was not inspected field by field.
        async with http.post(url + "/v1/chat/completions", json=prompt, headers=headers) as resp:
            assert resp.status == 200
        last = await backend_last(backend)
        assert "jane.doe@example.com" not in json.dumps(last) and "mail [EMAIL] today" in json.dumps(last)
    finally:
        proc.stop()


async def test_hot_reload_applies_edits_and_keeps_the_last_good_policy(issuer, backend, http, tmp_path):
    policies = _policy_dir(tmp_path)
    proc, url = start_gateway(gateway_config(issuer.url, backend,
                                             policies={"path": str(policies), "reload_s": 0.2}))
    headers = {"Authorization": f"Bearer {issuer.mint('alice', ['eng'])}"}
    ask = {**CHAT, "messages": [{"role": "user", "content": "tell me about Project Falcon"}]}

    async def status() -> int:
        async with http.post(url + "/v1/chat/completions", json=ask, headers=headers) as resp:
            return resp.status

    try:
        assert await status() == 200
        (policies / "20-deny.yaml").write_text(
            "rules:\n  - name: no-falcon\n    when: {request_detects: [design_docs]}\n    action: deny\n")
        assert await eventually(lambda: _is(status, 403), timeout=5)
        (policies / "20-deny.yaml").write_text("rules:\n  - name: no-falcon\n    when: {groups: 42}\n")
        async def stale() -> bool:
            async with http.get(url + "/readyz") as resp:
                report = await resp.json()
            return resp.status == 200 and report["checks"]["policy"].get("stale") is True
        assert await eventually(stale, timeout=5)
        async with http.get(url + "/readyz") as resp:
            assert "20-deny.yaml:3" in json.dumps(await resp.json())
        assert await status() == 403  # the last good policy still decides
        assert metric(await scrape(url), "gateway_policy_reload_failures_total") >= 1
    finally:
        proc.stop()


async def _is(fn, expected) -> bool:
    return await fn() == expected


def test_an_invalid_policy_stops_start_up_with_file_and_line(issuer, backend, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    action: maybe\n")
    cfg = gateway_config(issuer.url, backend, policies={"path": str(bad)})
    proc = Proc([sys.executable, "-m", "gateway.cli", "serve", "--config", write_config(cfg)], name="bad-policy")
    assert proc.popen.wait(20) == 2
    assert "bad.yaml:3" in proc.output()
    proc.stop()
