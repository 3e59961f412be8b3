"""Revocation store fixtures: the same tests run against the memory store and a real Redis store."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.principal import Principal
from gateway.revocation import MemoryRevocationStore, RedisRevocationStore, RevocationSettings, jti_hash

FAST = dict(heartbeat_s=0.1, max_staleness_s=0.5, reconnect_initial_s=0.05, reconnect_max_s=0.2,
            redis_timeout_s=1.0)
"""Timings that keep the Redis tests fast: outages are noticed within half a second."""


def fast_settings(**overrides: object) -> RevocationSettings:
    return RevocationSettings(**{"backend": "redis", **FAST, **overrides})


def alice(**changes: object) -> Principal:
    fields: dict = dict(sub="alice", groups=("eng",), client_id="app-1", token_id_hash=jti_hash("jti-alice-1"))
    fields.update(changes)
    return Principal(**fields)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.005) -> float:
    """Wait until `predicate()` holds; returns the seconds it took, fails the test after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
    return time.monotonic() - start


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the memory store, else the private Redis (requested only for the redis case)."""
    return None if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture
async def store(backend_url: str | None) -> AsyncIterator[MemoryRevocationStore | RedisRevocationStore]:
    s: MemoryRevocationStore | RedisRevocationStore
    if backend_url is None:
        s = MemoryRevocationStore(RevocationSettings(**FAST))
    else:
        s = RedisRevocationStore(backend_url, fast_settings())
    assert await s.start()
    yield s
    await s.close()


Replicas = Callable[..., Awaitable[RedisRevocationStore]]


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[Replicas]:
    """Makes started RedisRevocationStores on the same Redis (each one a 'replica'); closes them all at the end."""
    made: list[RedisRevocationStore] = []

    async def make(**overrides: object) -> RedisRevocationStore:
        s = RedisRevocationStore(redis_url, fast_settings(**overrides))
        made.append(s)
        assert await s.start()
        return s

    yield make
    for s in made:
        await s.close()
