"""`GET /admin/sessions/{id}` and `/replay`: records in session order, exact replay bytes and timing, errors."""
from __future__ import annotations

import itertools
import time

import orjson
import pytest

from gateway.audit import layout
from gateway.audit.canonical import decode
from gateway.audit.chain import MemorySessionHeads, StreamChain, write_record
from gateway.audit.record import MaskedEvent
from gateway.audit.store import MemoryStore, list_all
from tests.admin.conftest import INVESTIGATOR, body, flip, segment_of


def of(log, session):
    return [r for r in log.records if r.session_id == session]


# -- show ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("session", ["s-alpha", "bob@corp:7"])
async def test_show_returns_the_records_in_session_order(client, log, session):
    resp = await client.get(f"/admin/sessions/{session}", headers=INVESTIGATOR)
    assert resp.status == 200 and resp.content_type == "application/json"
    got = await resp.json()
    expected = of(log, session)
    assert got["id"] == session and got["problems"] == []
    assert [r["session_seq"] for r in got["records"]] == list(range(1, len(expected) + 1))
    assert got["records"] == [orjson.loads(r.to_bytes()) for r in expected]
    assert len({r["stream_id"] for r in got["records"]}) == 2  # the session spans both writer streams
    # stored as several records per segment, the session's pointers interleaving (replay merges them)
    assert len({segment_of(log.store, r) for r in expected}) < len(expected)
    bodies = [decode(log.store._objects[k]) for k in await list_all(log.store, layout.session_prefix(session))]
    assert any(b[-1][0] > nxt[0][0] for b, nxt in itertools.pairwise(bodies))


async def test_show_names_a_tampered_record(client, log):
    rec = of(log, "s-alpha")[1]
    flip(log.store, rec)
    got = await (await client.get("/admin/sessions/s-alpha", headers=INVESTIGATOR)).json()
    assert len(got["records"]) == len(of(log, "s-alpha"))
    assert got["problems"] == [(f"INVALID: record {rec.stream_id}/{rec.stream_seq} (session seq 2) fails its "
                                "hash check")]


@pytest.mark.parametrize("suffix", ["", "/replay", "/verify", "/export"])
async def test_unknown_session_is_404(client, suffix):
    resp = await client.get(f"/admin/sessions/no-such-session{suffix}", headers=INVESTIGATOR)
    assert resp.status == 404
    err = (await resp.json())["error"]
    assert err["code"] == "session_not_found" and err["type"] == "not_found_error"


@pytest.mark.parametrize("raw_id", ["a%20b", "a%0A", "a%2Fb", "x" * 129, "%C3%A9t%C3%A9", "a%22b"])
@pytest.mark.parametrize("suffix", ["", "/replay", "/verify", "/export"])
async def test_bad_session_id_is_400(client, raw_id, suffix):
    from yarl import URL

    resp = await client.get(URL(f"/admin/sessions/{raw_id}{suffix}", encoded=True), headers=INVESTIGATOR)
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["code"] == "invalid_session_id" and "1-128 characters" in err["message"]


async def test_unexpected_query_parameter_is_400(client):
    resp = await client.get("/admin/sessions/s-alpha?format=sse", headers=INVESTIGATOR)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "format"


# -- replay -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("session", ["s-alpha", "bob@corp:7", "s-gamma"])
async def test_replay_sse_reproduces_the_events_byte_for_byte(client, log, session):
    resp = await client.get(f"/admin/sessions/{session}/replay", params={"speed": "0"}, headers=INVESTIGATOR)
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    expected = b"".join(e["data"].encode() for r in of(log, session) for e in r.masked_response)
    assert await resp.read() == expected


async def test_replay_default_format_is_sse(client, log):
    resp = await client.get("/admin/sessions/s-delta/replay?speed=0", headers=INVESTIGATOR)
    assert resp.content_type == "text/event-stream"
    assert (await resp.read()).startswith(b'data: {"n":0,')


async def timed_client(make_client, make_ctx, events: list[MaskedEvent]):
    store = MemoryStore()
    chain = StreamChain(MemorySessionHeads(), "20250101T000000Z-eeeeeeeeeeee")
    await write_record(store, await chain.append(body(0, "timed", sub="u", time="2025-01-01T00:00:00.000Z",
                                                      events=events)))
    return await make_client(make_ctx(store=store))


async def test_replay_keeps_chunking_and_timing_at_speed_1(make_client, make_ctx):
    events = [MaskedEvent(t_ms=t, data=f"data: {{\"t\":{t}}}\n\n") for t in (0, 150, 300, 450)]
    client = await timed_client(make_client, make_ctx, events)
    start = time.monotonic()
    resp = await client.get("/admin/sessions/timed/replay", params={"speed": "1"}, headers=INVESTIGATOR)
    assert resp.status == 200
    arrivals: list[tuple[float, bytes]] = []
    async for chunk in resp.content.iter_any():
        arrivals.append((time.monotonic() - start, chunk))
    assert [c for _, c in arrivals] == [e["data"].encode() for e in events]  # one network chunk per event
    for (t, _), e in zip(arrivals, events):
        assert e["t_ms"] / 1000 - 0.02 <= t <= e["t_ms"] / 1000 + 0.5


async def test_replay_speed_scales_delays(make_client, make_ctx):
    events = [MaskedEvent(t_ms=0, data="data: a\n\n"), MaskedEvent(t_ms=600, data="data: b\n\n")]
    client = await timed_client(make_client, make_ctx, events)
    for speed, lo, hi in (("4", 0.14, 0.45), ("0", 0.0, 0.1)):
        start = time.monotonic()
        resp = await client.get(f"/admin/sessions/timed/replay?speed={speed}", headers=INVESTIGATOR)
        assert await resp.read() == b"data: a\n\ndata: b\n\n"
        assert lo <= time.monotonic() - start <= hi, speed


async def test_replay_json_and_text_formats(client, log):
    recs = of(log, "s-alpha")
    resp = await client.get("/admin/sessions/s-alpha/replay?speed=0&format=json", headers=INVESTIGATOR)
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    lines = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    heads = [x for x in lines if x["type"] == "record"]
    assert [h["hash"] for h in heads] == [r.hash for r in recs]
    assert [x["data"] for x in lines if x["type"] == "event"] == [e["data"] for r in recs for e in r.masked_response]

    resp = await client.get("/admin/sessions/s-alpha/replay?speed=0&format=text", headers=INVESTIGATOR)
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = await resp.text()
    assert text.count("--- #") == len(recs) and text.startswith("--- #1 ")


async def test_replay_reports_a_tampered_record_after_the_stream(client, log):
    rec = of(log, "s-alpha")[0]
    flip(log.store, rec)
    data = await (await client.get("/admin/sessions/s-alpha/replay?speed=0", headers=INVESTIGATOR)).read()
    events = b"".join(e["data"].encode() for r in of(log, "s-alpha") for e in r.masked_response)
    assert data.startswith(events)
    assert data[len(events):] == (f": INVALID: record {rec.stream_id}/{rec.stream_seq} (session seq 1) fails its "
                                  "hash check\n\n").encode()


async def test_replay_of_an_index_naming_only_missing_segments_is_evidence_not_404(client, log):
    segments = {segment_of(log.store, rec) for rec in of(log, "s-delta")}
    for key in segments:
        log.store.tamper_delete(key)
    resp = await client.get("/admin/sessions/s-delta/replay?speed=0&format=text", headers=INVESTIGATOR)
    assert resp.status == 200
    lines = (await resp.text()).splitlines()
    assert len(lines) == len(segments) and all(line.startswith("INVALID: missing segment streams/") for line in lines)
    got = await (await client.get("/admin/sessions/s-delta", headers=INVESTIGATOR)).json()
    assert got["records"] == [] and len(got["problems"]) == len(segments)


@pytest.mark.parametrize("query,param", [
    ("speed=-1", "speed"), ("speed=101", "speed"), ("speed=nan", "speed"), ("speed=fast", "speed"),
    ("speed=inf", "speed"), ("format=xml", "format"), ("format=SSE", "format"), ("sped=1", "sped"),
])
async def test_replay_parameter_errors(client, query, param):
    resp = await client.get(f"/admin/sessions/s-alpha/replay?{query}", headers=INVESTIGATOR)
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["code"] == "invalid_request" and err["param"] == param and param in err["message"]


async def test_replay_bounds_are_accepted(client):
    for q in ("speed=0", "speed=100", "speed=0.5&format=json"):
        resp = await client.get(f"/admin/sessions/s-delta/replay?{q}", headers=INVESTIGATOR)
        assert resp.status == 200, q
        await resp.read()
