"""ApprovalSettings: the `approvals` configuration section."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.approvals import ApprovalSettings, MemoryApprovalStore, create_store
from gateway.approvals.redis_store import RedisApprovalStore


def test_defaults_are_the_embedded_memory_backend():
    s = ApprovalSettings()
    assert s.backend == "memory" and s.hold_s <= s.ttl_s and s.grant_ttl_s > 0
    assert isinstance(create_store(s), MemoryApprovalStore)


@pytest.mark.parametrize("bad", [
    {"backend": "redis"},                                   # no URL
    {"backend": "redis", "redis_url": "http://x"},          # not a Redis URL
    {"hold_s": 120, "ttl_s": 60},                           # a held request would outlive its approval
    {"hold_s": 0},
    {"holds": 3},                                           # typo: unknown keys are refused
    {"backend": "etcd"},
])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        ApprovalSettings(**bad)


async def test_redis_backend_builds_a_redis_store_without_connecting():
    store = create_store(ApprovalSettings(backend="redis", redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.2))
    assert isinstance(store, RedisApprovalStore)
    await store.close()
