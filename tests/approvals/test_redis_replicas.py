"""Redis store across replicas: pub/sub wake-ups, and failing closed when Redis goes away."""
from __future__ import annotations

import asyncio
import time

import pytest

from gateway.approvals import ApprovalStoreUnavailable
from tests.approvals.conftest import pending


async def test_decision_on_replica_b_releases_the_waiter_on_replica_a(redis_stores):
    a, b = redis_stores(2)
    latencies = []
    for i in range(30):
        approval, _ = await a.open(pending(f"fp-{i}"))
        waiter = asyncio.create_task(a.wait(approval.id, timeout=1))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        started = time.perf_counter()
        await b.decide(approval.id, "bob", ["sre"], "approve", "")
        got = await waiter
        latencies.append(time.perf_counter() - started)
        assert got.state == "approved" and latencies[-1] < 0.5, "released by the timeout, not by the decision"
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < 0.2, latencies  # cross-replica target: 200 ms p99


async def test_many_waiters_share_one_subscription(redis_stores):
    a, b = redis_stores(2)
    approvals = [(await a.open(pending(f"fp-{i}")))[0] for i in range(200)]
    waiters = [asyncio.create_task(a.wait(x.id, timeout=5)) for x in approvals]
    deadline = time.monotonic() + 3
    while len(a.waiters) < 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(a.waiters) == 200 and not any(w.done() for w in waiters)
    for x in approvals:
        await b.decide(x.id, "bob", ["sre"], "deny", "")
    done = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert {x.state for x in done} == {"denied"} and len(a.waiters) == 0


async def test_redis_killed_makes_every_operation_unavailable_then_recovers(redis_stores, redis_server):
    (store,) = redis_stores(1)
    approval, _ = await store.open(pending())
    redis_server.kill()
    try:
        for op in (store.get(approval.id), store.open(pending("fp-2")), store.find_grant("fp-1"),
                   store.decide(approval.id, "bob", ["sre"], "approve", ""), store.ping(),
                   store.wait(approval.id, 1)):
            started = time.monotonic()
            with pytest.raises(ApprovalStoreUnavailable) as raised:
                await op
            assert raised.value.status == 503 and time.monotonic() - started < 2.0
    finally:
        redis_server.start()
    fresh, created = await store.open(pending("fp-3"))  # reconnects by itself
    assert created and (await store.get(fresh.id)).state == "pending"


async def test_redis_killed_while_parked_wakes_the_waiter_with_unavailable(redis_stores, redis_server):
    (store,) = redis_stores(1)
    approval, _ = await store.open(pending())
    waiter = asyncio.create_task(store.wait(approval.id, timeout=30))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    started = time.monotonic()
    redis_server.kill()
    try:
        with pytest.raises(ApprovalStoreUnavailable):
            await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - started < 2.0  # not after the 30 s hold: nothing waits on a dead store
    finally:
        redis_server.start()


async def test_wake_ups_resume_after_redis_restarts(redis_stores, redis_server):
    a, b = redis_stores(2)
    first, _ = await a.open(pending("fp-0"))
    await a.wait(first.id, timeout=0.05)  # subscribes
    redis_server.stop()
    redis_server.start()
    approval, _ = await a.open(pending("fp-1"))
    waiter = asyncio.create_task(a.wait(approval.id, timeout=10))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await b.decide(approval.id, "bob", ["sre"], "approve", "")
    assert (await asyncio.wait_for(waiter, 5)).state == "approved"
    assert time.monotonic() - started < 0.5 and a.subscriptions == 2


async def test_idle_subscription_is_kept_alive_and_still_delivers(redis_stores):
    a, b = redis_stores(2)
    a.keepalive_s = 0.05
    first, _ = await a.open(pending("fp-0"))
    await a.wait(first.id, timeout=0.3)  # subscribes, then idles through several PING/PONG rounds
    approval, _ = await a.open(pending("fp-1"))
    waiter = asyncio.create_task(a.wait(approval.id, timeout=5))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await b.decide(approval.id, "bob", ["sre"], "approve", "")
    assert (await asyncio.wait_for(waiter, 2)).state == "approved" and time.monotonic() - started < 0.2
    assert a.subscriptions == 1  # PONGs kept it alive: never dropped and resubscribed
