"""The uploader: ships spooled records as segments (index objects after their segment), keeps segment boundaries
across retries and crashes, survives outages with backoff, stops at a conflict or an unshippable entry; one real
S3 test."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from gateway.audit import layout
from gateway.audit.chain import (
    MemorySessionHeads,
    StreamChain,
    spool_entry,
    write_records,
)
from gateway.audit.record import Record
from gateway.audit.segment import segment_objects
from gateway.audit.spool import Spool
from gateway.audit.store import FileStore, MemoryStore, list_all
from gateway.audit.uploader import Uploader
from tests.audit.logbuilder import STREAM_A, STREAM_B, body, raw_delete

pytest_plugins = ["tests.audit.conftest_s3"]

SESSIONS = ("s-alpha", "bob@corp:7", "s-gamma", "s-delta")


async def make_records(n: int, *, stream: str = STREAM_A, start: int = 0,
                       sessions: tuple[str, ...] = SESSIONS) -> list[Record]:
    """Records 1..n of `stream` (+ `start` shifts the bodies, so two calls give different bytes)."""
    chain = StreamChain(MemorySessionHeads(), stream)
    return [await chain.append(body(start + i, sessions[i % len(sessions)], events=1)) for i in range(n)]


async def spool_all(spool: Spool, records: list[Record]) -> None:
    await asyncio.gather(*[spool.enqueue(spool_entry(r)) for r in records])  # queued in order: seq order


def new_spool(tmp_path) -> Spool:
    return Spool(tmp_path / "spool", max_bytes=1 << 24, fsync=False)


async def segment_ranges(store, stream: str = STREAM_A) -> list[tuple[int, int]]:
    keys = await list_all(store, layout.segment_prefix(stream))
    return sorted(layout.parse_segment_key(k)[1:] for k in keys)  # type: ignore[index]


async def check_store(store, records: list[Record]) -> None:
    """The store holds exactly `segment_objects` of the records, cut as its segments say; the segments of each
    stream cover its records without gap or overlap."""
    streams: dict[str, list[Record]] = {}
    for r in records:
        streams.setdefault(r.stream_id, []).append(r)
    expected: dict[str, bytes] = {}
    for sid, recs in streams.items():
        ranges = await segment_ranges(store, sid)
        assert [f for f, _ in ranges] == [1] + [last + 1 for _, last in ranges[:-1]], ranges
        assert ranges[-1][1] == len(recs), ranges
        for first, last in ranges:
            expected.update(segment_objects([r.to_bytes() for r in recs[first - 1:last]]))
    assert sorted(await list_all(store, "")) == sorted(expected)
    for key, data in expected.items():
        assert await store.get(key) == data, key


class Recorder:
    """Wraps a store and records every attempted put. Puts for which `when(key)` holds can fail: the first `fail`
    raise before storing, the next `lost` store and then raise (the PUT landed, its answer was lost). `on_fail`
    runs before such a failure is raised (e.g. to spool more records while the uploader is mid-round)."""

    def __init__(self, inner, *, fail: int = 0, lost: int = 0, when: Callable[[str], bool] = lambda key: True,
                 exc: type[Exception] = OSError, on_fail: Callable[[], Awaitable[None]] | None = None) -> None:
        self.inner, self.fail, self.lost, self.when, self.exc, self.on_fail = inner, fail, lost, when, exc, on_fail
        self.attempts: list[str] = []
        self.failed_at: list[float] = []

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        self.attempts.append(key)
        hit = self.when(key)
        if hit and self.fail > 0:
            self.fail -= 1
            await self._failing()
            raise self.exc("store down")
        ok = await self.inner.put_if_absent(key, data)
        if hit and self.lost > 0:
            self.lost -= 1
            await self._failing()
            raise self.exc("answer lost")
        return ok

    async def _failing(self) -> None:
        self.failed_at.append(time.monotonic())
        if self.on_fail is not None:
            await self.on_fail()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def is_segment(key: str) -> bool:
    return layout.parse_segment_key(key) is not None


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    return MemoryStore() if request.param == "memory" else FileStore(tmp_path / "store", fsync=False)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


# -- batching ---------------------------------------------------------------------------------------------------
async def test_a_backlog_ships_as_few_segments_then_a_trickle_ships_at_once(tmp_path, store):
    records = await make_records(220)
    sp = new_spool(tmp_path)
    await spool_all(sp, records[:200])
    up = Uploader(sp, store, batch=50)
    up.start()
    assert await up.drain(10)
    assert await segment_ranges(store) == [(1, 50), (51, 100), (101, 150), (151, 200)]
    await check_store(store, records[:200])
    st = up.status()
    assert st["shipped_entries"] == 200 and st["shipped_segments"] == 4
    # 4 segments + 4 session pointers each + the first segment's catalog objects (one per second in which
    # sessions started: the 4 sessions start at records 1-4, whose bodies are a second apart)
    assert st["shipped_objects"] == len(await list_all(store, "")) == 24
    assert st["shipped_objects"] / st["shipped_entries"] < 0.15
    for r in records[200:]:  # trickle: each append wakes the uploader, nothing waits for a fuller segment
        await sp.append(spool_entry(r))
        await until(lambda: sp.entries == 0)
    assert await up.drain(10)
    await check_store(store, records)
    st = up.status()
    assert st["backlog_entries"] == 0 and st["backlog_bytes"] == 0 and st["last_error"] is None
    assert st["shipped_entries"] == 220 and st["shipped_segments"] == len(await segment_ranges(store)) == 24
    assert st["shipped_objects"] == len(await list_all(store, ""))
    await up.stop()
    await sp.close()


async def test_index_objects_are_put_after_their_segment(tmp_path):
    records = await make_records(60)
    sp = new_spool(tmp_path)
    await spool_all(sp, records)
    rec = Recorder(MemoryStore())
    up = Uploader(sp, rec, batch=10, concurrency=4)
    up.start()
    assert await up.drain(10)
    await check_store(rec.inner, records)
    assert len(rec.attempts) == len(set(rec.attempts))  # nothing put twice
    segment_at = {layout.parse_segment_key(k)[1]: i for i, k in enumerate(rec.attempts) if is_segment(k)}
    assert len(segment_at) == 6
    for i, key in enumerate(rec.attempts):
        pointer, catalog = layout.parse_session_index_key(key), layout.parse_catalog_key(key)
        if pointer is not None:
            assert segment_at[pointer[3]] < i, key
        elif catalog is not None:
            assert segment_at[catalog[2]] < i, key
        else:
            assert is_segment(key), key
    await up.stop()
    await sp.close()


async def test_a_segment_cut_by_the_end_of_a_full_read_waits_and_streams_cut_segments(tmp_path, store):
    a, b = await make_records(3, stream=STREAM_A), await make_records(50, stream=STREAM_B)
    sp = new_spool(tmp_path)
    await spool_all(sp, a + b)
    up = Uploader(sp, store, batch=10)  # reads 40 entries: A 1..3, B 1..37
    up.start()
    assert await up.drain(10)
    assert await segment_ranges(store, STREAM_A) == [(1, 3)]  # cut at the stream change
    # B 31..37 was cut only by the end of the first read: it waited for the next one instead of shipping short
    assert await segment_ranges(store, STREAM_B) == [(1, 10), (11, 20), (21, 30), (31, 40), (41, 50)]
    await check_store(store, a + b)
    await up.stop()
    await sp.close()


# -- failures and retries ---------------------------------------------------------------------------------------
async def test_a_retry_after_a_lost_answer_keeps_the_segment_boundaries(tmp_path, store):
    records = await make_records(10)
    sp = new_spool(tmp_path)
    await spool_all(sp, records[:5])
    # the segment 1..5 lands but its PUT reports a failure; 5 more records are spooled before the retry
    rec = Recorder(store, lost=1, when=is_segment, on_fail=lambda: spool_all(sp, records[5:]))
    up = Uploader(sp, rec, batch=10, retry_initial_s=0.01)
    up.start()
    assert await up.drain(10)
    # a retry over all 10 records would have stored 1..10 next to 1..5: the same records twice
    assert await segment_ranges(store) == [(1, 5), (6, 10)]
    assert rec.attempts.count(layout.segment_key(STREAM_A, 1, 5)) == 2
    await check_store(store, records)
    assert up.status()["failures"] == 1 and "answer lost" in up.status()["last_error"]
    await up.stop()
    await sp.close()


async def test_a_failure_mid_round_acks_the_prefix_and_retries_the_same_ranges(tmp_path, store):
    records = await make_records(35)
    sp = new_spool(tmp_path)
    await spool_all(sp, records[:25])  # one round: 1..10, 11..20, 21..25 in flight together
    second, third = layout.segment_key(STREAM_A, 11, 20), layout.segment_key(STREAM_A, 21, 25)
    stored_while_failing: list[bool] = []

    async def meanwhile() -> None:  # the PUT of 11..20 fails slowly: more records arrive, 21..25 lands
        await spool_all(sp, records[25:])
        await asyncio.sleep(0.05)
        stored_while_failing.append(await store.get(third) is not None)

    rec = Recorder(store, fail=1, when=lambda k: k == second, on_fail=meanwhile)
    acked_when_putting_second: list[int] = []
    put = rec.put_if_absent

    async def probe(key: str, data: bytes) -> bool:
        if key == second:
            acked_when_putting_second.append(sp.acked)
        return await put(key, data)

    rec.put_if_absent = probe  # type: ignore[method-assign]
    up = Uploader(sp, rec, batch=10, retry_initial_s=0.01)
    up.start()
    assert await up.drain(10)
    assert stored_while_failing == [True]
    assert acked_when_putting_second == [0, 10]  # 1..10 was acknowledged before the retry, 21..25 was not
    # a retry cut afresh from 11 would have stored 21..30 next to 21..25
    assert await segment_ranges(store) == [(1, 10), (11, 20), (21, 25), (26, 35)]
    await check_store(store, records)
    st = up.status()
    assert st["failures"] == 1 and st["shipped_entries"] == 35 and st["shipped_segments"] == 4
    await up.stop()
    await sp.close()


async def test_backoff_no_loss_no_duplicates(tmp_path, store):
    records = await make_records(50)
    sp = new_spool(tmp_path)
    rec = Recorder(store, fail=5)
    up = Uploader(sp, rec, batch=10, concurrency=1, retry_initial_s=0.02, retry_max_s=0.1)
    up.start()
    for r in records:
        await sp.append(spool_entry(r))
    while rec.fail:  # let the backoff play out (drain would wake the uploader and cut a backoff short)
        await asyncio.sleep(0.01)
    assert await up.drain(10)
    await check_store(store, records)
    gaps = [b - a for a, b in zip(rec.failed_at, rec.failed_at[1:], strict=False)]
    assert gaps[-1] > gaps[0] * 1.5  # backoff grows (0.02, 0.04, 0.08, 0.1)
    assert all(g >= 0.015 for g in gaps), gaps
    st = up.status()
    assert st["failures"] == 5 and "store down" in st["last_error"] and st["shipped_entries"] == 50
    await up.stop()
    await sp.close()


async def test_conflict_stops_progress_and_is_reported(tmp_path, caplog):
    records = await make_records(20)
    store = MemoryStore()
    sp = new_spool(tmp_path)
    await spool_all(sp, records)
    bad_key = segment_objects([r.to_bytes() for r in records[5:10]])[1][0]  # a pointer of segment 6..10
    store.tamper_set(bad_key, b"someone else's pointer")
    up = Uploader(sp, store, batch=5, retry_initial_s=0.01, retry_max_s=0.05)
    with caplog.at_level(logging.ERROR, logger="gateway.audit.uploader"):
        up.start()
        assert not await up.drain(0.5)
    st = up.status()
    assert st["conflict_key"] == bad_key and "ConflictError" in st["last_error"]
    assert sp.acked == 5 and st["backlog_entries"] == 15  # 1..5 shipped; 6..10 and everything after it kept
    assert any("AUDIT ALARM" in r.getMessage() and bad_key in r.getMessage() for r in caplog.records)
    assert await store.get(bad_key) == b"someone else's pointer"  # never overwritten
    # an operator resolves it (here: removes the foreign object); the next attempt ships everything
    store.tamper_delete(bad_key)
    up.wake()
    assert await up.drain(5)
    await check_store(store, records)
    assert up.status()["conflict_key"] is None
    await up.stop()
    await sp.close()


@pytest.mark.parametrize("bad", [
    [("other/key", b"{}")],
    [(layout.spool_record_name(STREAM_A, 4), b"not a record")],
    [(layout.spool_record_name(STREAM_A, 9), b"")],  # named as another record than it holds (checked below)
    [],
], ids=["not-a-record-name", "not-json", "misnamed", "no-object"])
async def test_an_entry_that_is_not_a_record_blocks_and_is_reported(tmp_path, caplog, bad):
    records = await make_records(5)
    if bad and bad[0][1] == b"":
        bad = [(bad[0][0], records[3].to_bytes())]  # record 4's bytes under record 9's name
    store = MemoryStore()
    sp = new_spool(tmp_path)
    await spool_all(sp, records[:3])
    await sp.append(bad)
    await spool_all(sp, records[3:])
    up = Uploader(sp, store, batch=10, retry_initial_s=0.01, retry_max_s=0.05)
    with caplog.at_level(logging.ERROR, logger="gateway.audit.uploader"):
        up.start()
        assert not await up.drain(0.3)
    st = up.status()
    assert sp.acked == 3 and st["blocked_entry"] == 4 and "SpoolEntryError" in st["last_error"]
    assert next(e.seq for e in sp.pending()) == 4  # kept, and nothing after it was acknowledged
    assert await segment_ranges(store) == [(1, 3)]
    assert any("AUDIT ALARM" in r.getMessage() and "spool entry 4" in r.getMessage() for r in caplog.records)
    await up.stop()
    await sp.close()


# -- crash resume -----------------------------------------------------------------------------------------------
async def test_resume_keeps_a_stored_segment_that_starts_in_the_spool(tmp_path, store):
    records = await make_records(20)
    sp = new_spool(tmp_path)
    await spool_all(sp, records)
    # a previous process stored 6..12 (one of its index objects did not land), then died before 1..5 landed
    await write_records(store, records[5:12])
    pointer = segment_objects([r.to_bytes() for r in records[5:12]])[1][0]
    raw_delete(store, pointer)
    rec = Recorder(store)
    up = Uploader(sp, rec, batch=8)
    up.start()
    assert await up.drain(10)
    assert await segment_ranges(store) == [(1, 5), (6, 12), (13, 20)]  # not 1..8, which would overlap 6..12
    await check_store(store, records)
    assert pointer in rec.attempts
    await up.stop()
    await sp.close()


async def test_resume_completes_a_stored_segment_the_spool_holds_only_the_end_of(tmp_path, store):
    records = await make_records(20)
    sp = new_spool(tmp_path)
    await spool_all(sp, records)
    await sp.ack(5)  # the spool holds 6..20: an ack of 1..10 was lost, the spool file holding 1..5 was not
    objects = segment_objects([r.to_bytes() for r in records[:10]])
    await store.put_if_absent(*objects[0])  # the segment 1..10 landed, none of its index objects did
    rec = Recorder(store)
    up = Uploader(sp, rec, batch=8)
    up.start()
    assert await up.drain(10)
    assert await segment_ranges(store) == [(1, 10), (11, 18), (19, 20)]
    await check_store(store, records)  # the index objects of 1..10 exist, derived from the stored records
    assert layout.segment_key(STREAM_A, 1, 10) not in rec.attempts  # read, not re-put
    assert all(key in rec.attempts for key, _ in objects[1:])
    st = up.status()
    assert st["shipped_entries"] == 15 and st["shipped_segments"] == 3 and sp.acked == 20
    await up.stop()
    await sp.close()


@pytest.mark.parametrize("stored", [(0, 10), (5, 12)], ids=["starts-before-the-spool", "starts-in-the-spool"])
async def test_resume_alarms_when_a_stored_segment_holds_other_records(tmp_path, caplog, stored):
    records = await make_records(20)
    others = await make_records(20, start=1000)  # the same stream id and seqs, other bytes
    store = MemoryStore()
    sp = new_spool(tmp_path)
    await spool_all(sp, records)
    await sp.ack(5)
    lo, hi = stored
    await write_records(store, others[lo:hi])
    key = layout.segment_key(STREAM_A, lo + 1, hi)
    before = sorted(await list_all(store, ""))
    up = Uploader(sp, store, batch=8, retry_initial_s=0.01, retry_max_s=0.05)
    with caplog.at_level(logging.ERROR, logger="gateway.audit.uploader"):
        up.start()
        assert not await up.drain(0.3)
    st = up.status()
    assert st["conflict_key"] == key and "ConflictError" in st["last_error"]
    assert sp.acked == 5  # nothing acknowledged: the mismatching segment is the spool's head
    assert sorted(await list_all(store, "")) == before
    assert any("AUDIT ALARM" in r.getMessage() and key in r.getMessage() for r in caplog.records)
    await up.stop()
    await sp.close()


# -- lifecycle --------------------------------------------------------------------------------------------------
async def test_seaweed_outage_while_appending(tmp_path, seaweed):
    from gateway.audit.s3 import S3Store

    store = S3Store(seaweed.bucket, f"spool-{time.time_ns()}", endpoint_url=seaweed.endpoint,
                    region=seaweed.region, access_key=seaweed.access_key, secret_key=seaweed.secret_key,
                    connect_timeout=1, read_timeout=3, max_attempts=1)
    records = await make_records(200)
    sp = Spool(tmp_path / "spool", max_bytes=1 << 24, segment_bytes=4096)
    up = Uploader(sp, store, batch=32, retry_initial_s=0.1, retry_max_s=0.5)
    up.start()
    t0 = time.monotonic()
    stopper: threading.Thread | None = None
    try:
        for i, r in enumerate(records):
            await sp.append(spool_entry(r))
            if i == 40:  # stop S3 mid-stream (in a thread: the stop blocks for up to ~2 s)
                stopper = threading.Thread(target=seaweed.stop)
                stopper.start()
            await asyncio.sleep(0.01)
        await asyncio.to_thread(stopper.join)
        assert not seaweed.running
        await asyncio.sleep(2)
        assert sp.entries > 0  # the outage really left a backlog in the spool
        assert up.status()["failures"] > 0
    finally:
        if stopper is not None:
            await asyncio.to_thread(stopper.join)
        await asyncio.to_thread(seaweed.start)
    up.wake()  # skip the rest of the backoff: the store is back
    assert await up.drain(15), up.status()
    await check_store(store, records)
    assert up.status()["shipped_entries"] == 200
    assert sp.entries == 0 and sp.size_bytes == 0
    assert len([f for f in (tmp_path / "spool").iterdir() if f.suffix == ".seg"]) <= 1  # only the active one
    assert time.monotonic() - t0 < 20
    await up.stop()
    await sp.close()
    await store.close()


async def test_stop_right_after_a_drain_that_gave_up_does_not_hang(tmp_path):
    # store down, drain time 0: drain() wakes the backoff just before stop() cancels it (a cancellation that
    # asyncio.wait_for swallowed on Python 3.11, so stop() hung forever)
    spool = new_spool(tmp_path)
    store = Recorder(MemoryStore(), fail=10**9)
    up = Uploader(spool, store, retry_initial_s=0.05, retry_max_s=0.2)
    up.start()
    await spool.append(spool_entry((await make_records(1))[0]))
    await asyncio.sleep(0.2)
    for _ in range(20):
        assert await up.drain(0) is False
        # timed, not wait_for'd: stop() suppresses a cancellation, so a wait_for timeout would pass silently
        t0 = time.monotonic()
        await asyncio.wait_for(up.stop(), 5)
        assert time.monotonic() - t0 < 1.0
        up.start()
        await asyncio.sleep(0.01)
    await up.stop()
    await spool.close()
