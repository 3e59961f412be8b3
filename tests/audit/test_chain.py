import asyncio

import pytest
from pydantic import ValidationError

from gateway.audit import layout
from gateway.audit.canonical import decode
from gateway.audit.chain import (
    MemorySessionHeads,
    StreamChain,
    new_stream_id,
    objects_for,
    store_head_loader,
    write_record,
)
from gateway.audit.record import Record, RecordBody, hash_of
from gateway.audit.store import MemoryStore
from tests.audit.logbuilder import body


def test_record_bytes_and_hash():
    rec = Record.seal(body(1, "s"), stream_id="st", stream_seq=1, prev=None, session_seq=1, session_prev=None)
    raw = rec.to_bytes()
    obj = decode(raw)
    assert obj["hash"] == rec.hash == hash_of(obj)
    assert Record.from_bytes(raw) == rec
    assert b" " not in raw.split(b'"masked_request"')[0]  # no insignificant whitespace before the text fields
    assert list(obj) == sorted(obj)


def test_record_refuses_raw_and_unknown_fields():
    with pytest.raises(ValidationError):
        RecordBody(record_id="r", session_id="s", time="t", request_body="raw secret")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RecordBody(record_id="r", session_id="s", time="t", kind="other")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RecordBody(record_id="r", session_id="s", time="t", timings_us={"total": 1.5})  # floats: integers only


async def test_stream_and_session_links_across_two_streams():
    heads = MemorySessionHeads()
    a, b = StreamChain(heads), StreamChain(heads)
    assert a.stream_id != b.stream_id
    r1 = await a.append(body(1, "s"))
    r2 = await b.append(body(2, "s"))
    r3 = await a.append(body(3, "t"))
    r4 = await a.append(body(4, "s"))
    assert (r1.stream_seq, r1.prev, r1.session_seq, r1.session_prev) == (1, None, 1, None)
    assert (r2.stream_seq, r2.prev, r2.session_seq, r2.session_prev) == (1, None, 2, r1.hash)
    assert (r3.stream_seq, r3.prev, r3.session_seq, r3.session_prev) == (2, r1.hash, 1, None)
    assert (r4.stream_seq, r4.prev, r4.session_seq, r4.session_prev) == (3, r3.hash, 3, r2.hash)
    assert a.take_touched() == {"s": (3, r4.hash), "t": (1, r3.hash)} and a.touched == {}


async def test_concurrent_appends_stay_contiguous():
    heads = MemorySessionHeads()
    chains = [StreamChain(heads) for _ in range(3)]
    recs = await asyncio.gather(*(chains[i % 3].append(body(i, f"s{i % 4}")) for i in range(60)))
    for c in chains:
        mine = sorted((r for r in recs if r.stream_id == c.stream_id), key=lambda r: r.stream_seq)
        assert [r.stream_seq for r in mine] == list(range(1, 21))
        assert all(x.prev == (mine[i - 1].hash if i else None) for i, x in enumerate(mine))
    for s in range(4):
        mine = sorted((r for r in recs if r.session_id == f"s{s}"), key=lambda r: r.session_seq)
        assert [r.session_seq for r in mine] == list(range(1, 16))
        assert all(x.session_prev == (mine[i - 1].hash if i else None) for i, x in enumerate(mine))


async def test_restarted_writer_continues_sessions_from_the_store():
    store = MemoryStore()
    first = StreamChain(MemorySessionHeads())
    for i in range(3):
        await write_record(store, await first.append(body(i, "bob@x")))
    restarted = StreamChain(MemorySessionHeads(recover=store_head_loader(store)))
    rec = await restarted.append(body(9, "bob@x"))
    assert (rec.session_seq, rec.session_prev, rec.stream_seq) == (4, first.last_hash, 1)
    assert (await restarted.append(body(10, "new"))).session_seq == 1


def test_objects_for_record():
    rec = Record.seal(body(1, "a:b"), stream_id="st", stream_seq=7, prev="0" * 64, session_seq=2,
                      session_prev="1" * 64)
    (k1, v1), (k2, v2) = objects_for(rec)
    assert k1 == layout.record_key("st", 7) and v1 == rec.to_bytes()
    assert k2 == layout.session_index_key("a:b", 2, "st", 7) and v2 == rec.hash.encode()


def test_new_stream_id_is_a_valid_stream_id():
    assert layout.check_stream_id(new_stream_id())
