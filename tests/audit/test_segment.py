"""Segments' index objects and the catalog lookup of gateway-assigned sessions (their first segment has no pointer),
through every reader: pointers, head loader, replay, full and per-session verification, evidence bundles."""
from __future__ import annotations

import asyncio
import io

from gateway.audit import cli as audit_cli
from gateway.audit import layout
from gateway.audit.bundle import collect, write_bundle
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.chain import (
    MemorySessionHeads,
    StreamChain,
    store_head_loader,
    write_records,
)
from gateway.audit.digest import DigestWriter, generate_key
from gateway.audit.replay import iter_records
from gateway.audit.segment import (
    catalog_pointers,
    index_objects,
    meta_of,
    session_pointers,
)
from gateway.audit.store import MemoryStore, list_all
from gateway.audit.verify import verify_store
from tests.audit.logbuilder import body, raw_delete, raw_set

EPOCH = 1735689600  # 2025-01-01T00:00:00Z: `body(i, ...)` starts at EPOCH + i seconds


def assigned(i: int, *, off_s: float = 0.0) -> str:
    """The id the gateway would have assigned to the request of `body(i, ...)` (its start time), shifted by off_s."""
    return layout.assigned_session_id(EPOCH + i + off_s, f"{i:032x}")


async def chained(chain: StreamChain, specs: list[tuple[int, str]]):
    return [await chain.append(body(i, s)) for i, s in specs]


def metas(recs):
    return [meta_of(r.to_bytes()) for r in recs]


async def test_an_assigned_session_starting_in_a_segment_is_indexed_by_its_catalog_entry():
    a, b = assigned(0), assigned(1)
    late = assigned(2, off_s=1)  # a look-alike id whose time is not exactly its first record's
    recs = await chained(StreamChain(MemorySessionHeads(), "st"), [(0, a), (1, b), (2, late), (3, "client@x"),
                                                                   (4, a)])
    objects = dict(index_objects(metas(recs)))
    pointers = sorted(k for k in objects if k.startswith(layout.SESSIONS))
    assert pointers == sorted([layout.session_index_key(late, 1, "st", 1, 5),
                               layout.session_index_key("client@x", 1, "st", 1, 5)])
    catalog = {k: decode(v) for k, v in objects.items() if k.startswith(layout.CATALOG)}
    assert sorted(catalog) == sorted(layout.catalog_key(r.time, "st", 1) for r in recs[:4])  # a second each
    entries = {e["session_id"]: e for body_ in catalog.values() for e in body_}
    assert entries[a]["records"] == [[1, 1, recs[0].hash], [2, 5, recs[4].hash]]
    assert entries[b]["records"] == [[1, 2, recs[1].hash]]
    assert "records" not in entries[late] and "records" not in entries["client@x"]


async def test_entries_of_one_second_share_a_catalog_object():
    recs = await chained(StreamChain(MemorySessionHeads(), "st"), [(7, "x"), (7, "y"), (8, "z")])
    catalog = [k for k, _ in index_objects(metas(recs)) if k.startswith(layout.CATALOG)]
    assert catalog == [layout.catalog_key(recs[0].time, "st", 1), layout.catalog_key(recs[2].time, "st", 1)]


async def build(store: MemoryStore):
    """Two streams; session `a` (assigned) starts in a segment of stream A with another session and continues in
    a later segment of stream B; other assigned sessions start around the same time on both streams."""
    heads = MemorySessionHeads()
    ca, cb = StreamChain(heads, "sa"), StreamChain(heads, "sb")
    a = assigned(10)
    first = await chained(ca, [(9, assigned(9)), (10, a), (10, assigned(10, off_s=0.3)), (11, a)])
    other = await chained(cb, [(10, layout.assigned_session_id(EPOCH + 10.5, "f" * 32)), (11, "named")])
    later = await chained(cb, [(30, a), (31, "named")])
    for segment in (first, other, later):
        await write_records(store, segment)
    return a, [first[1], first[3], later[0]], (ca, cb)


async def test_readers_find_the_first_segment_through_the_catalog():
    store = MemoryStore()
    a, recs, _ = await build(store)
    assert [layout.parse_session_index_key(k)[1] for k in await list_all(store, layout.session_prefix(a))] == [3]
    [entry] = await catalog_pointers(store, a)
    assert (entry.stream_id, entry.first, entry.last, entry.entries) == (
        "sa", 1, 4, [(1, 2, recs[0].hash), (2, 4, recs[1].hash)])
    assert [p.session_seq for p in await session_pointers(store, a)] == [1, 3]
    assert [r.hash async for r in iter_records(store, a)] == [r.hash for r in recs]
    assert await store_head_loader(store)(a) == (3, recs[2].hash)
    assert await catalog_pointers(store, "named") == []  # not an assigned id
    assert await catalog_pointers(store, assigned(99)) == []  # assigned, never recorded


async def test_head_of_an_assigned_session_that_only_has_its_catalog_entry():
    store = MemoryStore()
    chain = StreamChain(MemorySessionHeads(), "st")
    s = assigned(3)
    recs = await chained(chain, [(3, s), (4, "x"), (4, s)])
    await write_records(store, recs)
    assert await list_all(store, layout.session_prefix(s)) == []
    assert await store_head_loader(store)(s) == (2, recs[2].hash)


async def test_verifiers_check_the_catalog_entry_that_stands_for_a_pointer(tmp_path):
    store = MemoryStore()
    a, _, chains = await build(store)
    key = generate_key()
    for chain in chains:
        await DigestWriter(chain, key).publish(store)
    assert (await verify_store(store, public_keys=[key.public_key()])).clean
    session = await audit_cli.verify_session(store, a, public_keys=[key.public_key()])
    assert session.clean and session.summary() == "3/3 valid"
    # a bundle carries the catalog object and verifies offline
    objects, manifest_records, streams = await collect(store, a)
    [entry] = await catalog_pointers(store, a)
    assert entry.key in objects and layout.segment_key("sa", 1, 4) in objects
    assert [r["session_seq"] for r in manifest_records] == [1, 2, 3]
    path = str(tmp_path / "a.tar")
    write_bundle(path, a, objects, manifest_records, streams, [key.public_key()])
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(audit_cli.verify, path, session=a, out=out, err=err)
    assert code == 0, out.getvalue() + err.getvalue()
    # the catalog entry's records edited: both verifiers see it
    body_ = decode(await store.get(entry.key))
    for e in body_:
        if e["session_id"] == a:
            e["records"] = e["records"][:1]
    raw_set(store, entry.key, canonical_bytes(body_))
    assert "catalog_mismatch" in {p.what for p in (await verify_store(store, public_keys=[key.public_key()])).problems}
    per_session = await audit_cli.verify_session(store, a, public_keys=[key.public_key()])
    assert not per_session.ok
    # ... and deleted: the full verifier names it, the session loses its first records
    raw_delete(store, entry.key)
    assert "catalog_missing" in {p.what for p in (await verify_store(store, public_keys=[key.public_key()])).problems}
    assert [r.session_seq async for r in iter_records(store, a)] == [3]
    assert not (await audit_cli.verify_session(store, a, public_keys=[key.public_key()])).ok


async def test_a_look_alike_id_with_an_impossible_date_gets_a_pointer():
    """`24:00:05` on Dec 31 would read as 00:00:05 the next day to plain arithmetic, but no lookup could ever build
    its window: such an id must be indexed by a pointer, or it would hide its session from every lookup."""
    store = MemoryStore()
    odd = "g20241231T240005000Z-" + "a" * 32
    assert layout.assigned_session_time(odd) is None and layout.catalog_lookup_window(odd) is None
    [rec] = await chained(StreamChain(MemorySessionHeads(), "st"), [(5, odd)])  # recorded at 2025-01-01T00:00:05
    await write_records(store, [rec])
    assert await list_all(store, layout.session_prefix(odd)) == [layout.session_index_key(odd, 1, "st", 1, 1)]
    assert [r.hash async for r in iter_records(store, odd)] == [rec.hash]


async def test_a_forked_assigned_session_shows_both_first_records():
    """Two writers that both think they start the session (heads lost): every reader sees both branches."""
    store = MemoryStore()
    s = assigned(4)
    ra = await chained(StreamChain(MemorySessionHeads(), "ra"), [(4, s)])
    rb = await chained(StreamChain(MemorySessionHeads(), "rb"), [(4, s)])
    for recs in (ra, rb):
        await write_records(store, recs)
    assert len(await catalog_pointers(store, s)) == 2
    assert sorted([r.stream_id async for r in iter_records(store, s)]) == ["ra", "rb"]
    assert "session_fork" in {p.what for p in (await audit_cli.verify_session(store, s)).problems}
    _, manifest_records, _ = await collect(store, s)
    assert len(manifest_records) == 2


async def test_malformed_catalog_entries_are_skipped_not_raised():
    store = MemoryStore()
    s = assigned(6)
    key = layout.catalog_key("2025-01-01T00:00:06.000Z", "st", 1)
    entry = {"session_id": s, "subject": "u", "time": "2025-01-01T00:00:06.000Z", "hash": "0" * 64}
    raw_set(store, key, b'[{"hash":"' + b"0" * 64 + b'","records":[[1.5,1,"x"]],"session_id":"' + s.encode()
            + b'","subject":"u","time":"2025-01-01T00:00:06.000Z"}]')
    assert await catalog_pointers(store, s) == []
    raw_set(store, key, canonical_bytes([{**entry, "records": [[1, 5000, "0" * 64]]}]))  # beyond any segment
    assert await catalog_pointers(store, s) == []
    assert [r async for r in iter_records(store, s)] == []
    assert await store_head_loader(store)(s) is None
    assert "session_not_found" in {p.what for p in (await audit_cli.verify_session(store, s)).problems}


async def test_per_session_verify_fails_when_another_sessions_line_makes_the_segment_unusable():
    """Another session's record in the segment, broken so its index objects cannot be derived, must not let an
    edit of this session's pointer pass unnoticed."""
    store = MemoryStore()
    recs = await chained(StreamChain(MemorySessionHeads(), "st"), [(1, "victim"), (2, "other"), (3, "victim")])
    await write_records(store, recs)
    seg = layout.segment_key("st", 1, 3)
    lines = (await store.get(seg)).split(b"\n")
    lines[1] = lines[1].replace(b'.000Z"', b'Z"', 1)  # the other session's time, without milliseconds
    raw_set(store, seg, b"\n".join(lines))
    pointer = layout.session_index_key("victim", 1, "st", 1, 3)
    raw_set(store, pointer, canonical_bytes([[1, 1, recs[0].hash]]))  # drops seq 2 of the victim
    result = await audit_cli.verify_session(store, "victim")
    assert not result.ok and "segment_unusable" in {p.what for p in result.problems}
