"""Several RedisRevocationStores on one Redis act as replicas: propagation, reloads after outages, freshness."""
from __future__ import annotations

import asyncio
import statistics
import time

import pytest
import redis.asyncio as aioredis

from gateway.revocation import RedisRevocationStore, Revocation, RevocationStoreUnavailable
from tests.revocation.conftest import alice, eventually, fast_settings


async def test_revocation_on_b_reaches_a_within_one_second(replicas, record_property):
    a, b = await replicas(), await replicas()
    arrived: dict[str, float] = {}
    a.subscribe(lambda rev: arrived.setdefault(rev.id, time.monotonic()))
    latencies = []
    for i in range(20):
        principal = alice(sub=f"user-{i}")
        sent = time.monotonic()
        rev = await b.add("subject", principal.sub, reason="leak", created_by="root")
        await eventually(lambda: rev.id in arrived, timeout=2.0, step=0.001)
        assert a.is_revoked(principal) == rev
        latencies.append(arrived[rev.id] - sent)
    latencies.sort()
    record_property("revocation_propagation_ms", {
        "p50": round(statistics.median(latencies) * 1000, 2), "max": round(latencies[-1] * 1000, 2)})
    assert latencies[-1] < 1.0, f"slowest propagation {latencies[-1]:.3f}s"


async def test_delete_on_b_reaches_a(replicas):
    a, b = await replicas(), await replicas()
    rev = await b.add("client_id", "app-1", reason="rotated", created_by="root")
    await eventually(lambda: a.is_revoked(alice()) is not None, timeout=1.0)
    assert await b.delete(rev.id) == rev
    await eventually(lambda: a.is_revoked(alice()) is None, timeout=1.0)
    assert await a.list() == []


async def test_event_hook_fires_only_on_the_replica_that_made_the_change(replicas):
    a, b = await replicas(), await replicas()
    events: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}
    heard: dict[str, list[str]] = {"a": [], "b": []}
    for name, store in (("a", a), ("b", b)):
        async def hook(kind: str, rev: Revocation, name: str = name) -> None:
            events[name].append((kind, rev.id))
        store.on_event = hook
        store.subscribe(lambda rev, name=name: heard[name].append(rev.id))
    rev = await b.add("subject", "alice", reason="r", created_by="root")
    await eventually(lambda: heard["a"] == [rev.id], timeout=1.0)
    await asyncio.sleep(0.2)  # b's own echo and any duplicate would have arrived by now
    assert heard == {"a": [rev.id], "b": [rev.id]}
    assert events == {"a": [], "b": [("revocation.created", rev.id)]}


async def test_reconnect_reloads_what_was_missed(replicas, redis_server):
    # A waits 1.5 s before resubscribing, so B's add below lands while A cannot hear it: only a reload shows it
    a = await replicas(reconnect_initial_s=1.5, reconnect_max_s=1.5)
    b = await replicas()
    heard: list[str] = []
    a.subscribe(lambda rev: heard.append(rev.id))
    before = await b.add("subject", "alice", reason="r", created_by="root")
    await eventually(lambda: a.is_revoked(alice()) == before, timeout=1.0)
    try:
        redis_server.stop()  # no persistence: Redis comes back empty, and so must A's mirror
        await eventually(lambda: not a.synced, timeout=2.0)
    finally:
        redis_server.start()
    missed = await b.add("subject", "bob", reason="r", created_by="root")
    assert not a.synced, "A reconnected too early: the reload path would not be exercised"
    assert a.is_revoked(alice(sub="bob")) is None
    await eventually(lambda: a.synced and a.is_revoked(alice(sub="bob")) == missed, timeout=5.0)
    assert a.is_revoked(alice()) is None, "a revocation Redis no longer holds must leave the mirror on reload"
    assert heard == [before.id, missed.id]
    assert a.fresh


async def test_freshness_and_writes_while_redis_is_down(replicas, redis_server):
    a = await replicas()
    rev = await a.add("subject", "alice", reason="r", created_by="root")
    assert a.fresh
    try:
        redis_server.stop()
        took = await eventually(lambda: not a.fresh, timeout=3.0)
        assert took <= a.settings.max_staleness_s + 0.5
        assert a.is_revoked(alice()) == rev, "the mirror keeps answering; the filter decides what stale means"
        with pytest.raises(RevocationStoreUnavailable):
            await a.add("subject", "bob", reason="r", created_by="root")
        with pytest.raises(RevocationStoreUnavailable):
            await a.delete(rev.id)
        with pytest.raises(RevocationStoreUnavailable):
            await a.list()
    finally:
        redis_server.start()
    await eventually(lambda: a.fresh, timeout=5.0)
    await a.add("subject", "bob", reason="r", created_by="root")  # writes work again on the same store


async def test_start_with_redis_down_is_not_fresh_until_it_answers(redis_url, redis_server):
    store = RedisRevocationStore(redis_url, fast_settings())
    try:
        redis_server.kill()
        assert await store.start(wait_s=0.3) is False
        assert not store.fresh
    finally:
        redis_server.start()
    try:
        await eventually(lambda: store.fresh, timeout=5.0)
    finally:
        await store.close()


async def test_malformed_messages_on_the_channel_are_ignored(replicas, redis_url):
    a = await replicas()
    client = aioredis.from_url(redis_url)
    try:
        for junk in (b"not json", b'{"op":"add","revocation":{"id":"x"}}', b'{"op":"drop"}', b"[]"):
            await client.publish(a.settings.channel, junk)
    finally:
        await client.aclose()
    b = await replicas()
    rev = await b.add("subject", "alice", reason="r", created_by="root")
    await eventually(lambda: a.is_revoked(alice()) == rev, timeout=1.0)
    assert a.synced and len(await a.list()) == 1


async def test_an_idle_healthy_subscription_stays_fresh(replicas):
    a = await replicas()
    samples = []
    for _ in range(50):  # 1 s, twice max_staleness_s, with no revocation traffic at all: heartbeats keep it fresh
        samples.append((a.fresh, a.synced))
        await asyncio.sleep(0.02)
    assert all(fresh and synced for fresh, synced in samples)
