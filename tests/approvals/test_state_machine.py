"""The approval state machine, run against both stores (memory and Redis) through the one interface."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from gateway.approvals import (
    AlreadyDecided,
    ApprovalNotFound,
    InvalidDecision,
    NotAnApprover,
    NotPending,
    SelfApproval,
    run_sweeper,
)
from tests.approvals.conftest import Events, pending


async def test_one_approver_approves_and_the_grant_covers_only_that_fingerprint(make_store):
    events = Events()
    store = make_store(grant_ttl_s=30, on_event=events)
    a, created = await store.open(pending("fp-1"))
    assert created and a.state == "pending"
    done = await store.decide(a.id, "bob", ["sre"], "approve", "looks fine")
    assert done.state == "approved" and done.approvers == ["bob"] and done.decided_at is not None
    assert (await store.get(a.id)).state == "approved"
    grant = await store.find_grant("fp-1")
    assert grant is not None and grant.id == a.id
    assert await store.find_grant("fp-2") is None  # an approval never lets a different request through
    assert await store.find_grant("fp-1", now=done.decided_at + 31) is None  # past grant_ttl_s
    assert events.kinds(a.id) == ["approval.requested", "approval.decided"]


async def test_requester_can_never_approve_even_as_a_member_of_the_approver_group(make_store):
    store = make_store()
    a, _ = await store.open(pending(sub="alice", groups=("sre",)))
    with pytest.raises(SelfApproval) as raised:
        await store.decide(a.id, "alice", ["sre"], "approve", "")
    assert raised.value.status == 403
    assert (await store.get(a.id)).state == "pending" and (await store.get(a.id)).decisions == ()


async def test_someone_outside_the_approver_groups_is_refused(make_store):
    store = make_store()
    a, _ = await store.open(pending(approver_groups=("sre", "security")))
    with pytest.raises(NotAnApprover):
        await store.decide(a.id, "mallory", ["eng", "ops"], "approve", "")
    assert (await store.decide(a.id, "sam", ["security"], "approve", "")).state == "approved"


async def test_one_person_approving_twice_counts_once(make_store):
    store = make_store()
    a, _ = await store.open(pending(min_approvals=2))
    first = await store.decide(a.id, "bob", ["sre"], "approve", "ok")
    assert first.state == "pending" and first.approvers == ["bob"]
    with pytest.raises(AlreadyDecided) as raised:
        await store.decide(a.id, "bob", ["sre"], "approve", "really ok")
    assert raised.value.status == 409
    still = await store.get(a.id)
    assert still.state == "pending" and still.approvers == ["bob"]
    done = await store.decide(a.id, "carol", ["sre"], "approve", "ok too")
    assert done.state == "approved" and done.approvers == ["bob", "carol"]


async def test_min_approvals_two_needs_two_distinct_people_deciding_at_once_on_two_replicas(backend, make_store):
    events = Events()
    replicas = [make_store(on_event=events), make_store(on_event=events)] if backend == "redis" \
        else [make_store(on_event=events)] * 2
    for round_ in range(10):
        a, _ = await replicas[0].open(pending(f"fp-{round_}", min_approvals=2))
        await replicas[1].get(a.id)  # both connected: the two decisions really race
        await asyncio.gather(replicas[0].decide(a.id, "bob", ["sre"], "approve", ""),
                             replicas[1].decide(a.id, "carol", ["sre"], "approve", ""))
        final = await replicas[1].get(a.id)
        assert final.state == "approved" and sorted(final.approvers) == ["bob", "carol"]
        decided_states = [s for k, i, s in events.seen if k == "approval.decided" and i == a.id]
        assert sorted(decided_states) == ["approved", "pending"]  # both counted, completed exactly once


async def test_any_deny_ends_it_and_terminal_states_never_change(make_store):
    store = make_store()
    a, _ = await store.open(pending(min_approvals=2))
    await store.decide(a.id, "bob", ["sre"], "approve", "")
    denied = await store.decide(a.id, "carol", ["sre"], "deny", "not this customer")
    assert denied.state == "denied"
    with pytest.raises(NotPending) as raised:
        await store.decide(a.id, "dave", ["sre"], "approve", "")
    assert raised.value.state == "denied" and raised.value.status == 409
    assert (await store.cancel(a.id)).state == "denied"  # cancel of an ended approval changes nothing
    assert await store.find_grant(a.fingerprint) is None


async def test_expired_by_time_is_refused_even_without_a_sweeper(make_store):
    events = Events()
    store = make_store(on_event=events)
    a, _ = await store.open(pending(ttl_s=60))
    with pytest.raises(NotPending) as raised:
        await store.decide(a.id, "bob", ["sre"], "approve", "", now=a.expires_at + 1)
    assert raised.value.state == "expired"
    got = await store.get(a.id)
    assert got.state == "expired" and got.end_reason == "ttl" and got.decisions == ()
    assert events.kinds(a.id) == ["approval.requested", "approval.expired"]  # written once, announced once
    await store.get(a.id, now=a.expires_at + 2)
    assert events.kinds(a.id).count("approval.expired") == 1


async def test_pending_approvals_expire_after_ttl_in_real_time(make_store):
    store = make_store()
    a, _ = await store.open(pending(ttl_s=0.15))
    started = time.monotonic()
    got = await store.wait(a.id, timeout=5)  # the wait ends at expiry, not at the timeout
    assert got.state == "expired" and time.monotonic() - started < 1.0


async def test_sweeper_expires_overdue_approvals_once(make_store):
    events = Events()
    replicas = [make_store(on_event=events), make_store(on_event=events)]
    a, _ = await replicas[0].open(pending(ttl_s=60))
    b, _ = await replicas[0].open(pending("fp-2", ttl_s=600))
    later = a.expires_at + 1
    swept = await asyncio.gather(*(r.expire_due(now=later) for r in replicas))
    # Redis: both replicas see the same approval and exactly one wins the transition (memory: only one has it).
    assert sorted(len(s) for s in swept) == [0, 1]
    assert events.kinds(a.id).count("approval.expired") == 1
    assert (await replicas[0].get(a.id, now=later)).state == "expired"
    assert (await replicas[0].get(b.id, now=later)).state == "pending"


async def test_identical_request_reattaches_to_its_pending_approval(make_store):
    events = Events()
    store = make_store(on_event=events)
    first, created = await store.open(pending("fp-1"))
    again, created_again = await store.open(pending("fp-1"))
    other, created_other = await store.open(pending("fp-2"))
    assert created and not created_again and again.id == first.id
    assert created_other and other.id != first.id
    assert events.kinds().count("approval.requested") == 2
    await store.cancel(first.id)
    fresh, created_fresh = await store.open(pending("fp-1"))  # the old one ended: ask anew
    assert created_fresh and fresh.id != first.id


async def test_cancel_marks_cancelled_and_announces_it(make_store):
    events = Events()
    store = make_store(on_event=events)
    a, _ = await store.open(pending())
    got = await store.cancel(a.id, "client_disconnected")
    assert got.state == "cancelled" and got.end_reason == "client_disconnected"
    assert events.kinds(a.id) == ["approval.requested", "approval.cancelled"]
    with pytest.raises(NotPending):
        await store.decide(a.id, "bob", ["sre"], "approve", "")


async def test_a_failing_event_hook_does_not_corrupt_state(make_store):
    events = Events(fail=True)
    store = make_store(on_event=events)
    a, _ = await store.open(pending())
    done = await store.decide(a.id, "bob", ["sre"], "approve", "")
    assert done.state == "approved" and (await store.get(a.id)).state == "approved"
    assert await store.find_grant(a.fingerprint) is not None
    assert events.kinds(a.id) == ["approval.requested", "approval.decided"]


async def test_malformed_decisions_and_unknown_ids_are_refused(make_store):
    store = make_store()
    a, _ = await store.open(pending())
    with pytest.raises(InvalidDecision):
        await store.decide(a.id, "bob", ["sre"], "maybe", "")
    with pytest.raises(InvalidDecision):
        await store.decide(a.id, "bob", ["sre"], "approve", "x" * 5000)
    with pytest.raises(ApprovalNotFound) as raised:
        await store.decide("apr_nope", "bob", ["sre"], "approve", "")
    assert raised.value.status == 404
    with pytest.raises(ApprovalNotFound):
        await store.get("x" * 500)


async def test_wait_is_released_by_a_decision_quickly(make_store):
    store = make_store()
    latencies = []
    for i in range(50):
        a, _ = await store.open(pending(f"fp-{i}"))
        waiter = asyncio.create_task(store.wait(a.id, timeout=1))
        await asyncio.sleep(0.005)
        started = time.perf_counter()
        await store.decide(a.id, "bob", ["sre"], "approve", "")
        got = await waiter
        latencies.append(time.perf_counter() - started)
        assert got.state == "approved" and latencies[-1] < 0.5, "released by the timeout, not by the decision"
    latencies.sort()
    assert latencies[-2] < 0.05, latencies  # same-replica target: 50 ms p99 (event-driven, no polling)


async def test_wait_times_out_while_pending(make_store):
    store = make_store()
    a, _ = await store.open(pending())
    started = time.monotonic()
    got = await store.wait(a.id, timeout=0.1)
    assert got.state == "pending" and 0.09 <= time.monotonic() - started < 0.5


async def test_listing_pending_oldest_first_with_cursor_and_state_filter(make_store):
    store = make_store()
    base = time.time()
    ids = []
    for i in range(5):
        a, _ = await store.open(pending(f"fp-{i}", now=base + i))
        ids.append(a.id)
    await store.decide(ids[1], "bob", ["sre"], "approve", "")
    first = await store.list("pending", limit=2)
    assert [a.id for a in first.approvals] == [ids[0], ids[2]] and first.next is not None
    second = await store.list("pending", limit=2, cursor=first.next)
    assert [a.id for a in second.approvals] == [ids[3], ids[4]]
    assert (await store.list("pending", limit=2, cursor=second.next)).approvals == [] or second.next is None
    everything = await store.list(limit=10)
    assert [a.id for a in everything.approvals] == list(reversed(ids)) and everything.next is None
    assert [a.id for a in (await store.list("approved")).approvals] == [ids[1]]


async def test_public_form_is_json_with_rfc3339_times_and_no_fingerprint(make_store):
    store = make_store()
    a, _ = await store.open(pending())
    done = await store.decide(a.id, "bob", ["sre"], "approve", "ok")
    public = json.loads(json.dumps(done.to_public()))
    assert public["id"] == a.id and public["state"] == "approved" and public["rule"] == "needs-ok"
    assert public["requester"] == {"sub": "alice", "groups": ["eng"]}
    assert public["created_at"].endswith("Z") and "T" in public["expires_at"]
    assert public["decisions"][0]["by"] == "bob" and public["decisions"][0]["at"].endswith("Z")
    assert public["excerpt"] == "customer [CUSTOMER_ID] asks"
    assert "fingerprint" not in json.dumps(public) and a.fingerprint not in json.dumps(public)


async def test_sweeper_finds_an_overdue_approval_whose_fingerprint_was_asked_again(make_store):
    events = Events()
    store = make_store(on_event=events)
    old, _ = await store.open(pending("fp-1", ttl_s=0.05))
    await asyncio.sleep(0.06)
    new, created = await store.open(pending("fp-1"))  # the old one is due: ask anew
    assert created and new.id != old.id
    assert [a.id for a in await store.expire_due()] == [old.id]
    assert events.kinds(old.id) == ["approval.requested", "approval.expired"]


async def test_background_sweeper_announces_expiry_without_any_reader(make_store):
    events = Events()
    store = make_store(on_event=events)
    a, _ = await store.open(pending(ttl_s=0.05))
    sweeper = asyncio.create_task(run_sweeper(store, 0.02))
    try:
        for _ in range(100):
            if "approval.expired" in events.kinds(a.id):
                break
            await asyncio.sleep(0.01)
    finally:
        sweeper.cancel()
    assert events.kinds(a.id) == ["approval.requested", "approval.expired"]
