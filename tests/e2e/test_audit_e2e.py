"""The audit log through real processes: SDK clients -> gateway (policies + file:// audit) -> fake backend.

Checks what investigators rely on: every authenticated exchange is one record, masked only; replay gives back
exactly the bytes the client received, chunk for chunk; the log verifies; and no planted secret is in its bytes.
"""
from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import openai
import pytest

from gateway.audit import cli as audit_cli
from gateway.audit import layout
from gateway.audit.replay import iter_records
from gateway.audit.segment import catalog_pointers
from gateway.audit.store import FileStore, list_all
from gateway.devtools.scripts import PLANTED
from tests.e2e.helpers import SESSION_ID
from tests.support import gateway_config, start_gateway

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PLANT = {"X-Fake-Plant": "1", "X-Fake-Chunks": "40", "X-Fake-Delay-Ms": "3"}
CHAT = {"model": "fake-reasoner-1", "messages": [{"role": "user", "content": "Why did the refund fail?"}]}


def audit_config(tmp: Path, issuer, backend, **audit) -> dict:
    return gateway_config(issuer.url, backend, policies={"path": str(POLICIES)},
                          admin={"investigator_groups": ["investigators"]}, audit={
        "store": f"file://{tmp / 'store'}", "spool_dir": str(tmp / "spool"),
        "signing_key": str(tmp / "key.pem"), "digest_interval_s": 1, **audit})


@pytest.fixture(scope="module")
def audited(tmp_path_factory, issuer, backend):
    tmp = tmp_path_factory.mktemp("audit")
    proc, url = start_gateway(audit_config(tmp, issuer, backend))
    yield url, tmp, proc
    proc.stop()


def store_bytes(root: Path) -> bytes:
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            out.append(Path(dirpath, name).read_bytes())
    return b"".join(out)


async def records_of(tmp: Path, session: str):
    store = FileStore(str(tmp / "store"))
    return [r async for r in iter_records(store, session)]


async def wait_records(tmp: Path, session: str, n: int = 1, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        recs = await records_of(tmp, session)
        if len(recs) >= n or asyncio.get_running_loop().time() > deadline:
            return recs
        await asyncio.sleep(0.05)


def bearer(issuer, sub="alice", groups=("engineers",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(sub, list(groups))}"}


async def test_stream_is_recorded_and_replays_exactly(audited, issuer, http):
    url, tmp, _ = audited
    headers = {**bearer(issuer), "X-Session-Id": "sess-stream-1", **PLANT}
    async with http.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers) as resp:
        assert resp.status == 200
        chunks = [c async for c in resp.content.iter_any()]
        request_id = resp.headers["X-Gateway-Request-Id"]
    received = b"".join(chunks)
    recs = await wait_records(tmp, "sess-stream-1")
    assert len(recs) == 1
    rec = recs[0]
    assert rec.request_id == request_id and rec.principal.sub == "alice" and rec.response_status == 200
    assert rec.response_content_type == "text/event-stream" and rec.decision.action == "allow"
    assert "".join(e["data"] for e in rec.masked_response).encode() == received
    assert len(rec.masked_response) > 10  # the chunking is kept, not one blob
    times = [e["t_ms"] for e in rec.masked_response]
    assert times == sorted(times) and times[0] == 0 and times[-1] > 20
    assert rec.masking_counts.get("pii.email", 0) >= 1
    assert "Why did the refund fail?" in rec.masked_request
    # replay (CLI path, no delays) gives back the bytes the client received
    out = io.BytesIO()
    code = await asyncio.to_thread(audit_cli.replay, f"file://{tmp / 'store'}", "sess-stream-1", speed=0, out=out)
    assert code == 0 and out.getvalue() == received


async def test_non_stream_and_session_chain(audited, issuer, http):
    url, tmp, _ = audited
    headers = {**bearer(issuer, "bob"), "X-Session-Id": "sess-chain", **PLANT}
    bodies = []
    for _ in range(3):
        async with http.post(url + "/v1/chat/completions", json=CHAT, headers=headers) as resp:
            assert resp.status == 200
            bodies.append(await resp.read())
    recs = await wait_records(tmp, "sess-chain", 3)
    assert [r.session_seq for r in recs] == [1, 2, 3]
    assert recs[1].session_prev == recs[0].hash and recs[2].session_prev == recs[1].hash
    for rec, body in zip(recs, bodies):
        assert "".join(e["data"] for e in rec.masked_response).encode() == body
        assert rec.response_content_type == "application/json"


async def test_denied_request_is_recorded_masked(audited, issuer, http):
    url, tmp, _ = audited
    secret = PLANTED["aws_access_key_id"]
    body = {**CHAT, "messages": [{"role": "user", "content": f"deploy with {secret} please"}]}
    headers = {**bearer(issuer), "X-Session-Id": "sess-denied"}
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        assert resp.status == 403
        sent = await resp.read()
    rec = (await wait_records(tmp, "sess-denied"))[0]
    assert rec.decision.action == "deny" and rec.decision.rule == "secrets-in-prompt"
    assert rec.error == "policy_denied" and rec.response_status == 403
    assert secret not in rec.masked_request and "deploy with [" in rec.masked_request
    assert rec.masked_response[0]["data"].encode() == sent


async def test_unauthenticated_attempts_are_not_recorded(audited, http):
    url, tmp, _ = audited
    async with http.post(url + "/v1/chat/completions", json=CHAT, headers={"X-Session-Id": "sess-anon"}) as resp:
        assert resp.status == 401
    await asyncio.sleep(0.3)
    assert await records_of(tmp, "sess-anon") == []


async def test_sdk_traffic_verifies_and_log_holds_no_planted_value(audited, issuer):
    url, tmp, _ = audited
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=issuer.mint("carol", ["engineers"]))
    stream = await client.chat.completions.create(**CHAT, stream=True, extra_headers={**PLANT, "X-Session-Id": "sdk"})
    async for _ in stream:
        pass
    await client.chat.completions.create(**CHAT, extra_headers={**PLANT, "X-Session-Id": "sdk"})
    await wait_records(tmp, "sdk", 2)
    await asyncio.sleep(1.5)  # a digest (every 1 s here) covers the records
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(audit_cli.verify, f"file://{tmp / 'store'}",
                                   public_key_files=[str(tmp / "key.pem.pub")], out=out, err=err)
    assert code == 0, out.getvalue() + err.getvalue()
    assert out.getvalue().strip().endswith("valid")
    data = store_bytes(tmp / "store") + store_bytes(tmp / "spool")
    for value in PLANTED.values():
        assert value.encode() not in data, value


async def test_investigator_endpoints_through_the_gateway(audited, issuer, http, tmp_path):
    url, tmp, _ = audited
    headers = {**bearer(issuer, "dave"), "X-Session-Id": "sess-admin", **PLANT}
    async with http.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers) as resp:
        received = await resp.read()
    await wait_records(tmp, "sess-admin")
    inv = bearer(issuer, "ivy", ["investigators"])
    async with http.get(url + "/admin/sessions?subject=dave&limit=10", headers=inv) as resp:
        assert resp.status == 200
        listed = await resp.json()
    assert [s["id"] for s in listed["sessions"]] == ["sess-admin"]
    async with http.get(url + "/admin/sessions/sess-admin/replay?speed=0", headers=inv) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        assert await resp.read() == received
    async with http.get(url + "/admin/sessions/sess-admin/verify", headers=inv) as resp:
        assert (await resp.json())["ok"] is True
    async with http.get(url + "/admin/sessions/sess-admin/export", headers=inv) as resp:
        assert resp.status == 200
        bundle = tmp_path / "bundle.tar"
        bundle.write_bytes(await resp.read())
    out = io.StringIO()
    assert await asyncio.to_thread(audit_cli.verify, str(bundle), public_key_files=[str(tmp / "key.pem.pub")],
                                   out=out, err=io.StringIO()) == 0, out.getvalue()
    # a requester is not an investigator; both calls were recorded as admin records of today's admin session
    async with http.get(url + "/admin/sessions", headers=bearer(issuer, "mallory")) as resp:
        assert resp.status == 403
    async with http.get(url + "/admin/audit/digest", headers=inv) as resp:
        digest = await resp.json()
    assert digest["digests"] and digest["public_keys"]
    from gateway.audit.record import utc_now
    admin_session = "admin-" + utc_now()[:10].replace("-", "")
    recs = await wait_records(tmp, admin_session, 6)
    actions = [(r.principal.sub, r.detail["action"], r.detail["outcome"]) for r in recs]
    assert all(r.kind == "admin" for r in recs)
    assert any(sub == "mallory" and outcome == "forbidden" for sub, _, outcome in actions)
    assert any(sub == "ivy" and action.endswith("replay") for sub, action, _ in actions)


async def test_gateway_assigned_sessions_are_found_through_the_catalog(audited, issuer, http):
    """An SDK client that names no session gets one per request, with its start time in the id; the record's
    first segment is then indexed by its catalog entry (no pointer object), and a continuation gets a pointer."""
    url, tmp, _ = audited
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=issuer.mint("dave", ["engineers"]))
    raw = await client.chat.completions.with_raw_response.create(**CHAT)
    session = raw.headers["x-gateway-session-id"]
    assert SESSION_ID.match(session)
    async with http.post(url + "/v1/chat/completions", json=CHAT,
                         headers={**bearer(issuer, "dave"), "X-Session-Id": session}) as resp:
        assert resp.status == 200 and resp.headers["X-Gateway-Session-Id"] == session
    recs = await wait_records(tmp, session, 2)
    assert [r.session_seq for r in recs] == [1, 2] and recs[1].session_prev == recs[0].hash
    store = FileStore(str(tmp / "store"))
    pointers = await list_all(store, layout.session_prefix(session))
    assert all(layout.parse_session_index_key(k)[1] == 2 for k in pointers)  # none for the first record
    [first] = await catalog_pointers(store, session)
    assert [e[0] for e in first.entries] == [1] and first.entries[0][2] == recs[0].hash
    await asyncio.sleep(1.5)  # a digest covers the records
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(audit_cli.verify, f"file://{tmp / 'store'}", session=session,
                                   public_key_files=[str(tmp / "key.pem.pub")], out=out, err=err)
    assert code == 0 and out.getvalue().strip() == "2/2 valid", out.getvalue() + err.getvalue()
