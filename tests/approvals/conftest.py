"""Fixtures: the same state-machine tests run against the memory store and the Redis store.

The Redis variant uses the session's private redis-server (tests/redis_server.py, never port 6379) with a fresh key
prefix per test, so tests never see each other's approvals. Several stores made by one ``make_store`` share that
prefix: they are replicas of one deployment.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from gateway.approvals import Approval, MemoryApprovalStore, Requester
from gateway.approvals.model import PENDING, new_approval_id
from gateway.approvals.redis_store import RedisApprovalStore


@pytest.fixture(params=["memory", "redis"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def backend_url(backend, request) -> str | None:
    if backend == "memory":
        return None
    server = request.getfixturevalue("redis_server")
    server.start()  # a previous test may have stopped it
    return server.url


@pytest.fixture
async def make_store(backend, backend_url):
    made = []
    prefix = f"t{uuid.uuid4().hex[:10]}:"

    def make(*, grant_ttl_s: float = 60.0, ttl_s: float = 60.0, on_event=None,
             clock: Callable[[], float] = time.time):
        if backend == "memory":
            store = MemoryApprovalStore(grant_ttl_s, on_event=on_event, clock=clock)
        else:
            store = RedisApprovalStore(backend_url, ttl_s=ttl_s, grant_ttl_s=grant_ttl_s, prefix=prefix,
                                       timeout_s=1.0, on_event=on_event, clock=clock)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def redis_stores(redis_server):
    """make(n) -> n RedisApprovalStore replicas on the private Redis, closed afterwards."""
    redis_server.start()
    made = []
    prefix = f"t{uuid.uuid4().hex[:10]}:"

    def make(n: int = 1, **kw):
        kw.setdefault("timeout_s", 0.5)
        stores = [RedisApprovalStore(redis_server.url, prefix=prefix, **kw) for _ in range(n)]
        made.extend(stores)
        return stores

    yield make
    for store in made:
        await store.close()


def pending(fingerprint: str = "fp-1", *, sub: str = "alice", groups: tuple[str, ...] = ("eng",),
            approver_groups: tuple[str, ...] = ("sre",), min_approvals: int = 1, ttl_s: float = 60.0,
            now: float | None = None) -> Approval:
    now = time.time() if now is None else now
    return Approval(
        id=new_approval_id(), state=PENDING, rule="needs-ok", requester=Requester(sub, groups),
        fingerprint=fingerprint, approver_groups=approver_groups, min_approvals=min_approvals,
        created_at=now, expires_at=now + ttl_s, excerpt="customer [CUSTOMER_ID] asks", method="POST",
        path="/v1/chat/completions", session_id="s-1", request_id="r-1",
    )


class Events:
    """Records on_event calls; optionally raises to prove a failing hook changes nothing."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.fail = fail

    async def __call__(self, kind: str, approval: Approval) -> None:
        self.seen.append((kind, approval.id, approval.state))
        if self.fail:
            raise RuntimeError("webhook queue is down")

    def kinds(self, approval_id: str | None = None) -> list[str]:
        return [k for k, i, _ in self.seen if approval_id is None or i == approval_id]
