"""LiveExchanges: a new revocation terminates exactly the in-flight exchanges of the principals it covers."""
from __future__ import annotations

import time

from gateway.errors import GatewayError
from gateway.revocation import LiveExchanges, MemoryRevocationStore, jti_hash
from gateway.revocation.model import new_revocation
from tests.revocation.conftest import alice


class Ended:
    """A terminate callback that records what it was called with."""

    def __init__(self) -> None:
        self.errors: list[GatewayError] = []

    def __call__(self, err: GatewayError) -> None:
        self.errors.append(err)


def _rev(kind: str, value: str):
    return new_revocation(kind, value, reason="r", created_by="root", ttl_s=60)


def test_only_matching_principals_are_terminated_among_a_thousand():
    live = LiveExchanges()
    others = [Ended() for _ in range(1000)]
    for i, ended in enumerate(others):
        live.register(alice(sub=f"user-{i}", client_id=f"app-{i}", token_id_hash=jti_hash(f"t-{i}")), ended)
    by_sub, by_client, by_token = Ended(), Ended(), Ended()
    live.register(alice(client_id="x", token_id_hash=None), by_sub)
    live.register(alice(sub="carol", client_id="shared-app", token_id_hash=None), by_client)
    live.register(alice(sub="dave", client_id=None), by_token)
    assert len(live) == 1003

    started = time.perf_counter()
    assert live.on_revocation(_rev("subject", "alice")) == 1
    assert time.perf_counter() - started < 0.05
    assert len(by_sub.errors) == 1 and not by_client.errors and not by_token.errors
    err = by_sub.errors[0]
    assert err.code == "stream_terminated" and "revoked" in err.message

    assert live.on_revocation(_rev("client_id", "shared-app")) == 1 and len(by_client.errors) == 1
    assert live.on_revocation(_rev("jti", "jti-alice-1")) == 1 and len(by_token.errors) == 1
    assert all(not ended.errors for ended in others)


def test_each_exchange_is_terminated_once_and_unregistered_on_exit():
    live = LiveExchanges()
    ended = Ended()
    with live.track(alice(), ended):
        assert live.on_revocation(_rev("subject", "alice")) == 1
        assert live.on_revocation(_rev("client_id", "app-1")) == 0  # already ended: not terminated twice
    assert len(live) == 0 and len(ended.errors) == 1
    later = Ended()
    with live.track(alice(sub="bob", client_id=None, token_id_hash=None), later):
        pass
    assert live.on_revocation(_rev("subject", "bob")) == 0 and not later.errors


def test_a_failing_terminate_does_not_spare_the_others():
    live = LiveExchanges()
    ended = Ended()

    def broken(err: GatewayError) -> None:
        raise RuntimeError("socket already gone")

    live.register(alice(), broken)
    live.register(alice(), ended)
    assert live.on_revocation(_rev("subject", "alice")) == 2
    assert len(ended.errors) == 1


async def test_attached_to_a_store_and_checked_at_registration():
    store = MemoryRevocationStore()
    live = LiveExchanges()
    detach = live.attach(store)
    streaming, bystander = Ended(), Ended()
    with live.track(alice(), streaming), live.track(alice(sub="bob", client_id=None, token_id_hash=None), bystander):
        await store.add("jti", "jti-alice-1", reason="leaked", created_by="root")
        assert len(streaming.errors) == 1 and not bystander.errors
        # a revocation that landed before registration (between the filter and the stream) still ends it
        late = Ended()
        with live.track(alice(), late):
            assert len(late.errors) == 1
    detach()
    await store.add("subject", "bob", reason="r", created_by="root")
    assert not bystander.errors
