"""The `ObjectStore` contract, as plain async checks any store implementation can be run against."""
from __future__ import annotations

import asyncio

import pytest

from gateway.audit.store import ConflictError, ObjectStore, list_all


async def check_get_put(store: ObjectStore) -> None:
    assert await store.get("c/a/1") is None
    assert await store.put_if_absent("c/a/1", b"one") is True
    assert await store.get("c/a/1") == b"one"
    assert await store.put_if_absent("c/a/1", b"one") is True  # identical: success, retry-safe
    with pytest.raises(ConflictError):
        await store.put_if_absent("c/a/1", b"two")
    assert await store.get("c/a/1") == b"one"
    assert await store.put_if_absent("c/empty", b"") is True
    assert await store.get("c/empty") == b""


async def check_list(store: ObjectStore) -> None:
    keys = ["l/a/1", "l/a/2", "l/a/10", "l/ab/1", "l/b/x.json", "l/b/y.json", "lz"]
    for k in keys:
        await store.put_if_absent(k, k.encode())
    assert await store.list("l/") == sorted(k for k in keys if k.startswith("l/"))
    assert await store.list("l/a/") == ["l/a/1", "l/a/10", "l/a/2"]
    assert await store.list("l/a") == ["l/a/1", "l/a/10", "l/a/2", "l/ab/1"]
    assert await store.list("l/a/", start_after="l/a/10") == ["l/a/2"]
    assert await store.list("l/", start_after="l/a/2", limit=2) == ["l/ab/1", "l/b/x.json"]
    assert await store.list("l/", limit=0) == []
    assert await store.list("l/nothing/") == []
    assert await list_all(store, "l/", page=2) == sorted(k for k in keys if k.startswith("l/"))


async def check_concurrent_create(store: ObjectStore) -> None:
    # many writers racing on one key with identical bytes all succeed; with different bytes exactly one wins
    assert all(await asyncio.gather(*(store.put_if_absent("r/same", b"x") for _ in range(8))))
    results = await asyncio.gather(*(store.put_if_absent("r/diff", bytes([i])) for i in range(8)),
                                   return_exceptions=True)
    winners = [r for r in results if r is True]
    assert len(winners) == 1 and all(isinstance(r, ConflictError) for r in results if r is not True)


async def check_bad_keys(store: ObjectStore) -> None:
    for bad in ("", "/a", "a/", "a//b", "../a", "a/../b", "a/.hidden", "a b", "a\\b"):
        with pytest.raises(ValueError):
            await store.put_if_absent(bad, b"x")


CHECKS = [check_get_put, check_list, check_concurrent_create, check_bad_keys]
