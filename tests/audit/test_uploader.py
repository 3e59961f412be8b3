"""The uploader: ships the spool to a store, survives outages with backoff, stops at a conflict; one real S3 test."""
from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from gateway.audit.spool import Spool
from gateway.audit.store import FileStore, MemoryStore, list_all
from gateway.audit.uploader import Uploader

pytest_plugins = ["tests.audit.conftest_s3"]


def objs(i: int) -> list[tuple[str, bytes]]:
    return [(f"records/s1/{i:08d}", f"record {i}".encode() * 5), (f"sessions/x/{i:08d}", f"h{i}".encode())]


def all_keys(n: int) -> list[str]:
    return sorted(k for i in range(n) for k, _ in objs(i))


class FlakyStore:
    """Wraps a store; the first `fail` puts raise the given error, and it records every attempted put."""

    def __init__(self, inner, fail: int = 0, exc: type[Exception] = OSError) -> None:
        self.inner, self.fail, self.exc = inner, fail, exc
        self.attempts: list[str] = []
        self.failed_at: list[float] = []

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        self.attempts.append(key)
        if self.fail > 0:
            self.fail -= 1
            self.failed_at.append(time.monotonic())
            raise self.exc("store down")
        return await self.inner.put_if_absent(key, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    return MemoryStore() if request.param == "memory" else FileStore(tmp_path / "store", fsync=False)


async def check_store(store, n: int) -> None:
    assert await list_all(store, "") == all_keys(n)
    for i in range(n):
        for k, data in objs(i):
            assert await store.get(k) == data


async def test_ships_everything(tmp_path, store):
    sp = Spool(tmp_path / "spool", max_bytes=1 << 22)
    up = Uploader(sp, store, batch=16)
    up.start()
    await asyncio.gather(*(sp.append(objs(i)) for i in range(100)))
    for i in range(100, 150):  # trickle: each append wakes the uploader
        await sp.append(objs(i))
    assert await up.drain(10)
    await check_store(store, 150)
    st = up.status()
    assert st["backlog_entries"] == 0 and st["backlog_bytes"] == 0
    assert st["shipped_entries"] == 150 and st["shipped_objects"] == 300 and st["last_error"] is None
    await up.stop()
    await sp.close()


async def test_ships_what_a_crash_left_first(tmp_path, store):
    sp = Spool(tmp_path / "spool", max_bytes=1 << 22, segment_bytes=1000)
    for i in range(40):
        await sp.append(objs(i))
    await sp.ack(10)  # as if the previous run shipped 10 and crashed mid-batch after landing a few more
    for i in range(10, 15):
        for k, d in objs(i):
            await store.put_if_absent(k, d)
    await sp.close()
    sp = Spool(tmp_path / "spool", max_bytes=1 << 22, segment_bytes=1000)
    flaky = FlakyStore(store)
    up = Uploader(sp, flaky, batch=8)
    up.start()
    assert await up.drain(10)
    assert flaky.attempts[0] == objs(10)[0][0]  # resumes right after the ack position (entries run concurrently)
    assert len(flaky.attempts) == 60  # entries 11..40, two objects each, re-shipping 11..15 is harmless
    assert await list_all(store, "") == sorted(k for i in range(10, 40) for k, _ in objs(i))
    assert [f for f in (tmp_path / "spool").iterdir() if f.suffix == ".seg"] == []
    await up.stop()
    await sp.close()


async def test_flaky_store_backoff_no_loss_no_duplicates(tmp_path, store):
    sp = Spool(tmp_path / "spool", max_bytes=1 << 22)
    flaky = FlakyStore(store, fail=5)
    up = Uploader(sp, flaky, batch=10, concurrency=1, retry_initial_s=0.02, retry_max_s=0.1)
    up.start()
    for i in range(50):
        await sp.append(objs(i))
    while flaky.fail:  # let the backoff play out (drain would wake the uploader and cut a backoff short)
        await asyncio.sleep(0.01)
    assert await up.drain(10)
    await check_store(store, 50)  # list_all is exact: no key twice, none missing
    gaps = [b - a for a, b in zip(flaky.failed_at, flaky.failed_at[1:], strict=False)]
    assert gaps[-1] > gaps[0] * 1.5  # backoff grows (0.02, 0.04, 0.08, 0.1)
    assert all(g >= 0.015 for g in gaps), gaps
    st = up.status()
    assert st["failures"] == 5 and "store down" in st["last_error"] and st["shipped_entries"] == 50
    await up.stop()
    await sp.close()


async def test_conflict_stops_progress_and_is_reported(tmp_path, caplog):
    store = MemoryStore()
    sp = Spool(tmp_path / "spool", max_bytes=1 << 22)
    for i in range(20):
        await sp.append(objs(i))
    bad_key = objs(7)[0][0]
    store.tamper_set(bad_key, b"someone else's record")
    up = Uploader(sp, store, batch=4, retry_initial_s=0.01, retry_max_s=0.05)
    with caplog.at_level(logging.ERROR, logger="gateway.audit.uploader"):
        up.start()
        assert not await up.drain(0.5)
    st = up.status()
    assert st["conflict_key"] == bad_key and "ConflictError" in st["last_error"]
    assert sp.acked == 7  # entries 1..7 are seq 1..7 → objs(0..6); entry 8 (objs(7)) is kept
    assert next(e.seq for e in sp.pending()) == 8 and st["backlog_entries"] == 13
    assert any("AUDIT ALARM" in r.getMessage() and bad_key in r.getMessage() for r in caplog.records)
    assert await store.get(bad_key) == b"someone else's record"  # never overwritten
    # an operator resolves it (here: removes the foreign object); the next attempt ships everything
    store.tamper_delete(bad_key)
    up.wake()
    assert await up.drain(5)
    await check_store(store, 20)
    assert up.status()["conflict_key"] is None
    await up.stop()
    await sp.close()


async def test_seaweed_outage_while_appending(tmp_path, seaweed):
    from gateway.audit.s3 import S3Store

    store = S3Store(seaweed.bucket, f"spool-{time.time_ns()}", endpoint_url=seaweed.endpoint,
                    region=seaweed.region, access_key=seaweed.access_key, secret_key=seaweed.secret_key,
                    connect_timeout=1, read_timeout=3, max_attempts=1)
    sp = Spool(tmp_path / "spool", max_bytes=1 << 24, segment_bytes=4096)
    up = Uploader(sp, store, batch=32, retry_initial_s=0.1, retry_max_s=0.5)
    up.start()
    t0 = time.monotonic()
    stopper: threading.Thread | None = None
    try:
        for i in range(200):
            await sp.append(objs(i))
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
    await check_store(store, 200)
    assert up.status()["shipped_entries"] == 200
    assert [f for f in (tmp_path / "spool").iterdir() if f.suffix == ".seg"] == []
    assert time.monotonic() - t0 < 20
    await up.stop()
    await sp.close()
    await store.close()


async def test_stop_right_after_a_drain_that_gave_up_does_not_hang(tmp_path):
    # store down, drain time 0: drain() wakes the backoff just before stop() cancels it (a cancellation that
    # asyncio.wait_for swallowed on Python 3.11, so stop() hung forever)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, fsync=False)
    store = FlakyStore(MemoryStore(), fail=10**9)
    up = Uploader(spool, store, retry_initial_s=0.05, retry_max_s=0.2)
    up.start()
    await spool.append(objs(0))
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
