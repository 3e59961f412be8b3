"""The approval gate driven through the filter chain with exchanges built in the test: no sockets."""
from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc

import pytest

from gateway.approvals import ApprovalSettings, MemoryApprovalStore, exchange_fingerprint
from gateway.errors import GatewayError, error_body
from gateway.exchange import Exchange
from gateway.filters.approval import APPROVAL, ApprovalGate
from gateway.filters.base import CONTINUE, Filter
from gateway.filters.chain import FilterChain
from gateway.filters.policy import DECISION
from gateway.policy.compiled import ApprovalSpec
from gateway.policy.engine import Decision
from gateway.principal import Principal
from tests.approvals.conftest import Events, pending

BODY = b'{"model":"r1","messages":[{"role":"user","content":"look up CUST-00012345"}]}'


class After(Filter):
    """Stands for everything after the gate (and the forwarder): records whether the request got through."""

    name = "after"

    def __init__(self) -> None:
        self.passed: list[str] = []

    async def on_request(self, ex):
        self.passed.append(ex.request_id)
        return CONTINUE


def exchange(body: bytes = BODY, sub: str = "alice", action: str = "require_approval",
             min_approvals: int = 1) -> Exchange:
    ex = Exchange(method="POST", path="/v1/chat/completions", body=body, principal=Principal(sub, ("eng",)),
                  session_id="s-1")
    ex.annotations[DECISION] = Decision(action, "customer-data", "mask",
                                        approval=ApprovalSpec(("sre",), min_approvals))
    return ex


def settings(**kw) -> ApprovalSettings:
    return ApprovalSettings(**{"hold_s": 0.15, "ttl_s": 60, "grant_ttl_s": 60, "retry_after_s": 7, **kw})


def gate_chain(store, excerpt_for=lambda ex: "look up [CUSTOMER_ID]", **kw):
    after = After()
    gate = ApprovalGate(store, settings(**kw), excerpt_for)
    return FilterChain([gate, after]), after, gate


async def run(chain: FilterChain, ex: Exchange) -> GatewayError | None:
    try:
        await chain.run_request(ex)
    except GatewayError as err:
        return err
    return None


async def wait_pending(store, n: int = 1) -> list:
    """The pending approvals once ``n`` exist (the gate is parked by then)."""
    for _ in range(300):
        page = await store.list("pending")
        if len(page.approvals) >= n:
            return page.approvals
        await asyncio.sleep(0.005)
    raise AssertionError("no pending approval appeared")


@pytest.fixture
def store(make_store):
    return make_store()


async def test_requests_without_require_approval_pass_untouched(store):
    chain, after, _ = gate_chain(store)
    for ex in (exchange(action="allow"), Exchange(method="GET", path="/v1/models")):
        assert await run(chain, ex) is None and APPROVAL not in ex.annotations
    assert len(after.passed) == 2 and (await store.list()).approvals == []


async def test_hold_elapses_into_approval_pending_with_id_and_retry_after(store):
    chain, after, _ = gate_chain(store)
    ex = exchange()
    started = time.monotonic()
    err = await run(chain, ex)
    elapsed = time.monotonic() - started
    assert err is not None and err.status == 403 and err.code == "approval_pending"
    assert err.headers["Retry-After"] == "7" and 0.14 <= elapsed < 1.0
    approval_id = err.extra["approval_id"]
    assert error_body(err, "openai")["error"]["approval_id"] == approval_id
    assert after.passed == [] and ex.annotations[APPROVAL] == {"approval_id": approval_id, "state": "pending",
                                                               "deciders": []}
    stored = await store.get(approval_id)
    assert stored.state == "pending"  # the hold ending is not a disconnect: the approval stays open
    assert stored.excerpt == "look up [CUSTOMER_ID]" and stored.requester.sub == "alice"
    assert stored.rule == "customer-data" and stored.approver_groups == ("sre",)


async def test_approved_within_the_hold_continues_and_names_the_deciders(store):
    chain, after, _ = gate_chain(store, hold_s=5)
    ex = exchange(min_approvals=2)
    task = asyncio.create_task(run(chain, ex))
    (pending,) = await wait_pending(store)
    await store.decide(pending.id, "bob", ["sre"], "approve", "")
    await asyncio.sleep(0.02)
    assert not task.done()  # one of two approvals is not enough
    started = time.perf_counter()
    await store.decide(pending.id, "carol", ["sre"], "approve", "")
    assert await task is None
    assert time.perf_counter() - started < 0.05  # released by the decision, not by a poll
    assert after.passed == [ex.request_id] and ex.decision == "approved"
    assert ex.annotations[APPROVAL] == {"approval_id": pending.id, "state": "approved", "deciders": ["bob", "carol"]}


async def test_denied_within_the_hold_is_approval_denied(store):
    chain, after, _ = gate_chain(store, hold_s=5)
    task = asyncio.create_task(run(chain, exchange()))
    (pending,) = await wait_pending(store)
    await store.decide(pending.id, "bob", ["sre"], "deny", "no")
    err = await task
    assert err.status == 403 and err.code == "approval_denied" and err.extra["approval_id"] == pending.id
    assert "no" not in err.message.split()  # the approver's reason is for auditors, not the requester
    assert after.passed == []


async def test_identical_request_after_approval_passes_and_a_different_body_does_not(store):
    chain, after, _ = gate_chain(store)
    err = await run(chain, exchange())
    await store.decide(err.extra["approval_id"], "bob", ["sre"], "approve", "")
    again = exchange()
    started = time.monotonic()
    assert await run(chain, again) is None and time.monotonic() - started < 0.1  # no new hold
    assert again.annotations[APPROVAL]["approval_id"] == err.extra["approval_id"]
    other = exchange(body=BODY.replace(b"12345", b"99999"))
    err2 = await run(chain, other)
    assert err2.code == "approval_pending" and err2.extra["approval_id"] != err.extra["approval_id"]
    by_someone_else = exchange(sub="mallory")
    assert (await run(chain, by_someone_else)).code == "approval_pending"
    assert after.passed == [again.request_id]


async def test_a_retry_while_pending_reattaches_to_the_same_approval(store):
    chain, _, _ = gate_chain(store)
    first = await run(chain, exchange())
    second = await run(chain, exchange())
    assert first.extra["approval_id"] == second.extra["approval_id"]
    assert len((await store.list("pending")).approvals) == 1


async def parked(store, n: int = 1) -> None:
    for _ in range(400):
        if len(store.waiters) >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the gate never parked")


async def test_client_disconnect_while_parked_cancels_the_pending_approval(make_store):
    events = Events()
    store = make_store(on_event=events)
    chain, after, _ = gate_chain(store, hold_s=5)
    ex = exchange()
    task = asyncio.create_task(chain.run_request(ex))
    (pending,) = await wait_pending(store)
    await parked(store)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    got = await store.get(pending.id)  # cancelled before the handler's cancellation completed
    assert got.state == "cancelled" and got.end_reason == "client_disconnected"
    assert ex.annotations[APPROVAL]["state"] == "cancelled"
    assert events.kinds(pending.id) == ["approval.requested", "approval.cancelled"] and after.passed == []


@pytest.mark.parametrize("delay", [None, 0.0, 0.001, 0.003])
async def test_client_disconnect_at_any_moment_cancels_once_the_exchange_completes(make_store, delay):
    """As the proxy does it: cancel the handler, mark `client_disconnected`, then run the completion hooks."""
    store = make_store()
    chain, after, _ = gate_chain(store, hold_s=5)
    ex = exchange()
    task = asyncio.create_task(chain.run_request(ex))
    deadline = time.monotonic() + 2
    while APPROVAL not in ex.annotations and time.monotonic() < deadline:
        await asyncio.sleep(0)  # cancel as early as possible after the approval exists, before parking may begin
    if delay is not None:
        await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ex.annotations["client_disconnected"] = True
    chain.run_complete(ex)
    approval_id = ex.annotations[APPROVAL]["approval_id"]
    for _ in range(200):
        if (await store.get(approval_id)).state != "pending":
            break
        await asyncio.sleep(0.005)
    assert (await store.get(approval_id)).state == "cancelled" and after.passed == []


async def test_an_ordinary_completion_does_not_cancel(store):
    chain, _, _ = gate_chain(store)
    ex = exchange()
    err = await run(chain, ex)
    chain.run_complete(ex)
    await asyncio.sleep(0.05)
    assert (await store.get(err.extra["approval_id"])).state == "pending"


async def test_reattached_approval_expiring_while_parked_is_refused(make_store):
    store = make_store()
    ex = exchange()
    near_end, _ = await store.open(pending(await exchange_fingerprint(ex), ttl_s=0.1))
    chain, after, _ = gate_chain(store, hold_s=3)
    started = time.monotonic()
    err = await run(chain, ex)
    assert err.code == "approval_denied" and err.extra == {"approval_id": near_end.id, "approval_state": "expired"}
    assert after.passed == [] and time.monotonic() - started < 1.0  # woken at expiry, not at the end of the hold


async def test_async_excerpt_callable_is_awaited_and_bounded():
    store = MemoryApprovalStore()

    async def excerpt(ex):
        return "[EMAIL] " * 1000

    chain, _, _ = gate_chain(store, excerpt_for=excerpt)
    err = await run(chain, exchange())
    assert len((await store.get(err.extra["approval_id"])).excerpt) == 2000


async def test_missing_principal_or_spec_fails_closed():
    chain, after, _ = gate_chain(MemoryApprovalStore())
    ex = exchange()
    ex.principal = None
    err = await run(chain, ex)
    assert err.status == 503 and err.code == "approval_unavailable" and after.passed == []


async def test_redis_down_gives_503_and_forwards_nothing(redis_stores, redis_server):
    (store,) = redis_stores(1)
    chain, after, _ = gate_chain(store)
    redis_server.kill()
    try:
        err = await run(chain, exchange())
    finally:
        redis_server.start()
    assert err.status == 503 and err.code == "approval_unavailable" and after.passed == []


async def test_redis_killed_while_parked_gives_503_and_forwards_nothing(redis_stores, redis_server):
    (store,) = redis_stores(1)
    chain, after, _ = gate_chain(store, hold_s=30)
    task = asyncio.create_task(run(chain, exchange()))
    await wait_pending(store)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    redis_server.kill()
    try:
        err = await asyncio.wait_for(task, 5)
    finally:
        redis_server.start()
    assert err.status == 503 and err.code == "approval_unavailable" and after.passed == []
    assert time.monotonic() - started < 2.0


async def test_approval_on_replica_b_releases_the_request_parked_on_replica_a(redis_stores):
    a, b = redis_stores(2)
    chain, after, _ = gate_chain(a, hold_s=5)
    ex = exchange()
    task = asyncio.create_task(run(chain, ex))
    (pending,) = await wait_pending(b)
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await b.decide(pending.id, "bob", ["sre"], "approve", "")
    assert await task is None and time.perf_counter() - started < 0.2
    assert after.passed == [ex.request_id] and ex.annotations[APPROVAL]["deciders"] == ["bob"]


async def test_completion_hook_cancels_when_the_client_left_before_the_hold_began(store):
    gate = ApprovalGate(store, settings(), lambda ex: "")
    approval, _ = await store.open(pending())
    ex = exchange()
    ex.annotations[APPROVAL] = {"approval_id": approval.id, "state": "pending", "deciders": []}
    gate.on_complete(ex)  # not disconnected: nothing happens
    await asyncio.sleep(0.02)
    assert (await store.get(approval.id)).state == "pending"
    ex.annotations["client_disconnected"] = True
    gate.on_complete(ex)
    for _ in range(100):
        if (await store.get(approval.id)).state != "pending":
            break
        await asyncio.sleep(0.005)
    assert (await store.get(approval.id)).state == "cancelled"


async def test_a_parked_request_costs_far_less_than_64_kb():
    store = MemoryApprovalStore()
    chain, _, _ = gate_chain(store, hold_s=30)
    n = 300
    exs = [exchange(body=b'{"messages":[{"role":"user","content":"CUST-%08d"}]}' % i) for i in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.create_task(run(chain, ex)) for ex in exs]
        await parked(store, n)
        gc.collect()
        per_request = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert per_request < 64 * 1024, per_request  # the approval, its waiter and the parked coroutines


async def test_leaving_while_the_pending_answer_is_written_keeps_the_approval(store):
    chain, _, _ = gate_chain(store)
    ex = exchange()
    err = await run(chain, ex)
    ex.error = err  # as the proxy records its local reply before writing it
    ex.annotations["client_disconnected"] = True
    chain.run_complete(ex)
    await asyncio.sleep(0.05)
    assert (await store.get(err.extra["approval_id"])).state == "pending"
