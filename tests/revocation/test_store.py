"""Both stores (memory, and Redis through `redis_url`) behave the same for one process."""
from __future__ import annotations

import asyncio

import pytest

from gateway.revocation import EVENT_CREATED, EVENT_DELETED, InvalidRevocation, Revocation, jti_hash
from tests.revocation.conftest import alice


@pytest.mark.parametrize("kind, value", [("subject", "alice"), ("client_id", "app-1"), ("jti", "jti-alice-1")])
async def test_matches_by_subject_client_and_token_id(store, kind, value):
    assert store.is_revoked(alice()) is None
    rev = await store.add(kind, value, reason="incident 42", created_by="root")
    assert store.is_revoked(alice()) == rev
    others = [alice(sub="bob", client_id="app-2", token_id_hash=jti_hash("jti-bob")),
              alice(sub="bob", client_id=None, token_id_hash=None)]
    assert [store.is_revoked(p) for p in others] == [None, None]
    if kind == "jti":
        assert rev.value == alice().token_id_hash
        assert all(value not in repr(r.to_dict()) for r in await store.list())
    # only the revoked attribute matters: the same subject with another client and token is still revoked by sub
    changed = alice(client_id="app-9", token_id_hash=jti_hash("jti-other"))
    assert (store.is_revoked(changed) is not None) == (kind == "subject")


async def test_expired_revocations_stop_matching(store):
    short = await store.add("subject", "alice", reason="brief", created_by="root", ttl_s=0.3)
    assert store.is_revoked(alice()) == short
    assert [r.id for r in await store.list()] == [short.id]
    await asyncio.sleep(0.4)
    assert store.is_revoked(alice()) is None
    assert await store.list() == []
    assert await store.delete(short.id) is None


async def test_delete(store):
    keep = await store.add("client_id", "app-1", reason="x", created_by="root")
    gone = await store.add("subject", "alice", reason="y", created_by="root")
    assert await store.delete(gone.id) == gone
    assert await store.delete(gone.id) is None
    assert await store.delete("not-an-id") is None
    assert [r.id for r in await store.list()] == [keep.id]
    assert store.is_revoked(alice()) == keep
    assert store.is_revoked(alice(client_id=None)) is None


async def test_list_is_oldest_first_with_default_ttl(store):
    first = await store.add("subject", "a", reason="r", created_by="root")
    second = await store.add("subject", "b", reason="r", created_by="root", ttl_s=60)
    listed = await store.list()
    assert [r.id for r in listed] == [first.id, second.id]
    assert listed[0].ttl_s == pytest.approx(store.settings.default_ttl_s)
    assert listed[1].ttl_s == pytest.approx(60)


async def test_ttl_bounds_and_bad_input(store):
    with pytest.raises(InvalidRevocation):
        await store.add("subject", "alice", reason="r", created_by="root", ttl_s=store.settings.max_ttl_s + 1)
    with pytest.raises(InvalidRevocation):
        await store.add("tenant", "alice", reason="r", created_by="root")
    assert await store.list() == []


async def test_event_hook_and_listeners(store):
    events: list[tuple[str, str]] = []
    heard: list[Revocation] = []

    async def on_event(kind: str, rev: Revocation) -> None:
        events.append((kind, rev.id))

    store.on_event = on_event
    unsubscribe = store.subscribe(heard.append)
    rev = await store.add("subject", "alice", reason="r", created_by="root")
    await asyncio.sleep(0.2)  # the Redis store's own pub/sub echo must not count as a second new revocation
    assert heard == [rev]
    await store.delete(rev.id)
    assert events == [(EVENT_CREATED, rev.id), (EVENT_DELETED, rev.id)]
    unsubscribe()
    await store.add("subject", "bob", reason="r", created_by="root")
    assert heard == [rev]


async def test_a_failing_hook_or_listener_does_not_undo_the_revocation(store):
    async def broken_hook(kind: str, rev: Revocation) -> None:
        raise RuntimeError("audit down")

    def broken_listener(rev: Revocation) -> None:
        raise RuntimeError("bug")

    heard: list[Revocation] = []
    store.on_event = broken_hook
    store.subscribe(broken_listener)
    store.subscribe(heard.append)
    rev = await store.add("subject", "alice", reason="r", created_by="root")
    assert store.is_revoked(alice()) == rev and heard == [rev]
