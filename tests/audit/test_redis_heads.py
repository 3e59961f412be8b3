"""RedisSessionHeads: session chain heads shared by replicas through Redis (compare-and-set, recovery, outages)."""
from __future__ import annotations

import asyncio
import hashlib

import pytest
import redis.asyncio as aioredis

from gateway.audit.chain import Head, StreamChain
from gateway.audit.redis_heads import RedisSessionHeads, SessionHeadsUnavailable
from tests.audit.logbuilder import body


class Sealer:
    """Pure seal functions, one per record; counts calls so a test can see lost races being resealed."""

    def __init__(self) -> None:
        self.calls = 0

    def for_record(self, i: int):
        def seal(seq: int, prev: str | None) -> str:
            self.calls += 1
            return hashlib.sha256(f"record-{i}|{seq}|{prev}".encode()).hexdigest()
        return seal


@pytest.fixture
async def heads(redis_url):
    made: list[RedisSessionHeads] = []

    def make(**kwargs) -> RedisSessionHeads:
        made.append(RedisSessionHeads(redis_url, **kwargs))
        return made[-1]

    yield make
    for h in made:
        await h.close()


def assert_one_chain(results: list[tuple[int, int, str | None]], sealer: Sealer, first_seq: int = 1,
                     first_prev: str | None = None) -> str:
    """results: (record, seq, prev). Seqs are contiguous and each prev is the previous record's hash: no fork."""
    results = sorted(results, key=lambda r: r[1])
    assert [seq for _, seq, _ in results] == list(range(first_seq, first_seq + len(results)))
    expected_prev = first_prev
    for i, seq, prev in results:
        assert prev == expected_prev, f"fork at seq {seq}"
        expected_prev = sealer.for_record(i)(seq, prev)
    return expected_prev  # the last hash


async def test_concurrent_next_across_two_replicas_never_forks(heads):
    a, b = heads(), heads()
    sealer = Sealer()

    async def one(i: int) -> tuple[int, int, str | None]:
        seq, prev = await (a if i % 2 else b).next("s1", sealer.for_record(i))
        return i, seq, prev

    results = await asyncio.gather(*(one(i) for i in range(50)))
    resealed = sealer.calls - 50
    last = assert_one_chain(list(results), sealer)
    assert resealed > 0, "no race was lost: the test did not exercise the compare-and-set"
    assert await a.head("s1") == (50, last) == await b.head("s1")


async def test_two_stream_chains_sharing_redis_heads(heads):
    a, b = StreamChain(heads()), StreamChain(heads())
    records = await asyncio.gather(*((a if i % 2 else b).append(body(i, "shared")) for i in range(20)))
    ordered = sorted(records, key=lambda r: r.session_seq)
    assert [r.session_seq for r in ordered] == list(range(1, 21))
    assert [r.session_prev for r in ordered] == [None] + [r.hash for r in ordered[:-1]]


async def test_recover_loader_used_only_when_redis_has_no_head(heads):
    calls: list[str] = []

    async def recover(session_id: str) -> Head | None:
        calls.append(session_id)
        return (7, "h7") if session_id == "old" else None

    a, b = heads(recover=recover), heads(recover=recover)
    sealer = Sealer()

    async def one(i: int) -> tuple[int, int, str | None]:
        seq, prev = await (a if i % 2 else b).next("old", sealer.for_record(i))
        return i, seq, prev

    # both replicas recover the same head at once; only one may start the Redis head from it
    last = assert_one_chain(list(await asyncio.gather(*(one(i) for i in range(10)))), sealer,
                            first_seq=8, first_prev="h7")
    assert 1 <= calls.count("old") <= 2  # at most once per replica
    calls.clear()
    assert await b.next("old", sealer.for_record(99)) == (18, last)
    assert calls == []  # Redis has the head now: the store is not consulted again
    assert await a.next("new", sealer.for_record(100)) == (1, None) and calls == ["new"]


async def test_head_keys_get_the_configured_ttl(heads, redis_url):
    h = heads(key_prefix="t:head:", ttl_s=3600)
    await h.next("s", Sealer().for_record(1))
    client = aioredis.from_url(redis_url)
    try:
        ttl_ms = await client.pttl("t:head:s")
    finally:
        await client.aclose()
    assert 3590_000 < ttl_ms <= 3600_000


async def test_redis_down_raises_typed_error_then_recovers(heads, redis_server):
    h = heads()
    sealer = Sealer()
    assert await h.next("s", sealer.for_record(1)) == (1, None)
    try:
        redis_server.stop()
        with pytest.raises(SessionHeadsUnavailable):
            await h.next("s", sealer.for_record(2))
    finally:
        redis_server.start()
    # Redis restarted without persistence: the session starts over in Redis (a recover loader would prevent that)
    assert await h.next("s", sealer.for_record(3)) == (1, None)


async def test_corrupt_head_and_failing_recover_are_typed_errors(heads, redis_url):
    async def broken(session_id: str) -> Head | None:
        raise OSError("store unreachable")

    client = aioredis.from_url(redis_url)
    try:
        await client.set("gw:audit:head:bad", b"garbage")
    finally:
        await client.aclose()
    with pytest.raises(SessionHeadsUnavailable):
        await heads().next("bad", Sealer().for_record(1))
    with pytest.raises(SessionHeadsUnavailable):
        await heads(recover=broken).next("fresh", Sealer().for_record(1))
