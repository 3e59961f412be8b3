import asyncio

import pytest
from pydantic import ValidationError

from gateway.audit import layout
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.chain import (
    MemorySessionHeads,
    StreamChain,
    new_stream_id,
    spool_entry,
    store_head_loader,
    write_record,
    write_records,
)
from gateway.audit.record import Record, RecordBody, hash_of
from gateway.audit.segment import segment_objects, unpack
from gateway.audit.store import MemoryStore, list_all
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


def test_spool_entry_is_one_object_per_record():
    rec = Record.seal(body(1, "a:b"), stream_id="st", stream_seq=7, prev="0" * 64, session_seq=2,
                      session_prev="1" * 64)
    assert spool_entry(rec) == [(layout.spool_record_name("st", 7), rec.to_bytes())]
    assert layout.parse_spool_record_name(spool_entry(rec)[0][0]) == ("st", 7)


async def appended(chain: StreamChain, sessions: list[str], start: int = 0) -> list[Record]:
    return [await chain.append(body(start + i, s)) for i, s in enumerate(sessions)]


async def test_write_records_stores_one_segment_then_its_index():
    store = MemoryStore()
    chain = StreamChain(MemorySessionHeads(), "st")
    recs = await appended(chain, ["a", "b", "a", "c@x:1", "a"])
    await write_records(store, recs)
    seg = layout.segment_key("st", 1, 5)
    assert unpack(store._objects[seg]) == [r.to_bytes() for r in recs]
    pointers = await list_all(store, layout.SESSIONS)
    assert sorted(pointers) == sorted([layout.session_index_key("a", 1, "st", 1, 5),
                                       layout.session_index_key("b", 1, "st", 1, 5),
                                       layout.session_index_key("c@x:1", 1, "st", 1, 5)])
    a = [r for r in recs if r.session_id == "a"]
    assert decode(store._objects[layout.session_index_key("a", 1, "st", 1, 5)]) == \
        [[r.session_seq, r.stream_seq, r.hash] for r in a] and [r.session_seq for r in a] == [1, 2, 3]
    # one catalog object per second in which sessions started (these bodies are a second apart)
    starts = sorted((r for r in recs if r.session_seq == 1), key=lambda r: (r.time, r.session_id))
    assert await list_all(store, layout.CATALOG) == sorted(layout.catalog_key(r.time, "st", 1) for r in starts)
    for r in starts:
        assert decode(store._objects[layout.catalog_key(r.time, "st", 1)]) == [
            {"session_id": r.session_id, "subject": "alice", "time": r.time, "hash": r.hash}]
    # exactly the objects `segment_objects` derives, the segment first (a pointer never names a missing segment)
    objects = segment_objects([r.to_bytes() for r in recs])
    assert objects[0][0] == seg and dict(objects) == store._objects


async def test_a_later_segment_points_on_from_where_the_session_is():
    store = MemoryStore()
    chain = StreamChain(MemorySessionHeads(), "st")
    await write_records(store, await appended(chain, ["a", "b", "a"]))
    later = await appended(chain, ["b", "a"], start=3)
    await write_records(store, later)
    assert await list_all(store, layout.session_prefix("a")) == [layout.session_index_key("a", 1, "st", 1, 3),
                                                                 layout.session_index_key("a", 3, "st", 4, 5)]
    assert store._objects[layout.session_index_key("b", 2, "st", 4, 5)] == \
        canonical_bytes([[2, 4, later[0].hash]])
    # the later segment starts no session: every catalog object belongs to the first one
    assert {layout.parse_catalog_key(k)[1:] for k in await list_all(store, layout.CATALOG)} == {("st", 1)}


async def test_segment_objects_refuses_records_that_are_not_one_stream_in_order():
    a, b = StreamChain(MemorySessionHeads(), "sa"), StreamChain(MemorySessionHeads(), "sb")
    r1, r2, r3 = await appended(a, ["s", "s", "s"])
    with pytest.raises(ValueError):
        segment_objects([r1.to_bytes(), r3.to_bytes()])
    with pytest.raises(ValueError):
        segment_objects([r1.to_bytes(), (await b.append(body(9, "s"))).to_bytes()])
    assert len(segment_objects([r2.to_bytes(), r3.to_bytes()])) == 2  # segment + pointer: no session starts


async def test_head_loader_reads_the_last_pointer_over_multi_record_segments():
    store = MemoryStore()
    first = StreamChain(MemorySessionHeads(), "sa")
    recs = await appended(first, ["bob@x", "other", "bob@x", "bob@x", "other", "bob@x", "other"])
    await write_records(store, recs[:4])
    await write_records(store, recs[4:])
    load = store_head_loader(store)
    bob = [r for r in recs if r.session_id == "bob@x"]
    assert await load("bob@x") == (4, bob[-1].hash)
    assert await load("other") == (3, recs[-1].hash) and await load("nobody") is None
    # a restarted gateway (a new stream) continues the chain, and its segment becomes the last pointer
    restarted = StreamChain(MemorySessionHeads(recover=load), "sb")
    more = await appended(restarted, ["bob@x", "bob@x"], start=20)
    assert (more[0].session_seq, more[0].session_prev, more[0].stream_seq) == (5, bob[-1].hash, 1)
    await write_records(store, more)
    assert await load("bob@x") == (6, more[-1].hash)


async def test_head_loader_ignores_an_unreadable_last_pointer():
    store = MemoryStore()
    chain = StreamChain(MemorySessionHeads(), "sa")
    await write_records(store, await appended(chain, ["s", "s"]))
    store.tamper_set(layout.session_index_key("s", 1, "sa", 1, 2), b"not json")
    assert await store_head_loader(store)("s") is None


def test_new_stream_id_is_a_valid_stream_id():
    assert layout.check_stream_id(new_stream_id())
