"""The revocation filter, driven with Exchanges directly (no sockets)."""
from __future__ import annotations

import json

import pytest

from gateway.errors import error_bytes
from gateway.exchange import Exchange
from gateway.filters.base import Continue, Respond
from gateway.filters.revocation import RevocationFilter
from gateway.revocation import MemoryRevocationStore, RedisRevocationStore
from tests.revocation.conftest import alice, fast_settings


def _exchange(principal=None) -> Exchange:
    ex = Exchange("POST", "/v1/chat/completions")
    ex.principal = principal
    return ex


@pytest.fixture
async def unreachable():
    """A Redis store that never loaded (nothing listens on port 1): its mirror is not fresh."""
    store = RedisRevocationStore("redis://127.0.0.1:1/0", fast_settings())
    yield store
    await store.close()


@pytest.mark.parametrize("kind, value", [("subject", "alice"), ("client_id", "app-1"), ("jti", "jti-alice-1")])
async def test_revoked_principal_gets_401_token_revoked(kind, value):
    store = MemoryRevocationStore()
    rev = await store.add(kind, value, reason="laptop stolen", created_by="root")
    verdict = await RevocationFilter(store).on_request(ex := _exchange(alice()))
    assert isinstance(verdict, Respond)
    err = verdict.error
    assert (err.status, err.code) == (401, "token_revoked")
    assert "revoked" in err.message
    assert err.headers["WWW-Authenticate"].startswith('Bearer realm="gateway", error="invalid_token"')
    for body in (error_bytes(err, "openai"), error_bytes(err, "anthropic")):
        assert b"token_revoked" in body
        for secret in (value, rev.value, rev.id, "laptop stolen"):  # no token, hash, id or reason reaches the client
            assert secret.encode() not in body and secret not in json.dumps(err.headers)
    assert ex.annotations == {"auth_failure": "revoked", "revocation_id": rev.id}


async def test_other_principals_pass():
    store = MemoryRevocationStore()
    await store.add("subject", "bob", reason="r", created_by="root")
    assert isinstance(await RevocationFilter(store).on_request(_exchange(alice())), Continue)
    assert isinstance(await RevocationFilter(store).on_request(_exchange(None)), Continue)


async def test_stale_mirror_fails_closed_with_503(unreachable):
    assert not unreachable.fresh
    verdict = await RevocationFilter(unreachable).on_request(ex := _exchange(alice()))
    assert isinstance(verdict, Respond)
    assert (verdict.error.status, verdict.error.code) == (503, "auth_unavailable")
    assert "Retry-After" in verdict.error.headers
    assert ex.annotations["auth_failure"] == "revocations_stale"


async def test_a_known_revocation_is_reported_as_such_even_when_stale(unreachable):
    unreachable._mirror.put((rev := await MemoryRevocationStore().add("subject", "alice", reason="r",
                                                                       created_by="root")))
    verdict = await RevocationFilter(unreachable).on_request(_exchange(alice()))
    assert isinstance(verdict, Respond) and verdict.error.code == "token_revoked"
    assert unreachable.is_revoked(alice()) == rev
