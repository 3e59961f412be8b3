"""Key lifecycle against a live issuer: rotation, retirement, refetch rate limit, IdP outages."""
from __future__ import annotations

import asyncio
import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth.dev_issuer import DevIssuer
from gateway.auth.errors import AuthError
from gateway.auth.jwks import parse_jwks
from gateway.errors import GatewayError

from .conftest import AUDIENCE, FakeClock, free_port, make_settings, wait_until


async def test_rotation_and_retirement(issuer, make_verifier):
    clock = FakeClock()
    verifier = await make_verifier(issuer.url, clock=clock)
    old_kid = issuer.current_kid("RS256")
    old_token = issuer.mint("alice")
    assert (await verifier.verify(old_token)).sub == "alice"

    new_kid = issuer.rotate("RS256")
    new_token = issuer.mint("bob")
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    clock.advance(31)  # past jwks_min_refetch_s since the start-up fetch
    fetched = issuer.jwks_requests
    assert (await verifier.verify(new_token)).sub == "bob"
    assert issuer.jwks_requests == fetched + 1  # the unknown kid caused exactly one refetch
    assert (await verifier.verify(issuer.mint("bob2"))).sub == "bob2"
    assert issuer.jwks_requests == fetched + 1  # now known: no more fetches

    # the old key is still published, so old tokens and new tokens signed with it keep verifying
    assert (await verifier.verify(old_token)).sub == "alice"
    assert (await verifier.verify(issuer.mint("carol", kid=old_kid))).sub == "carol"

    issuer.retire(old_kid)
    assert (await verifier.verify(old_token)).sub == "alice"  # not refreshed yet
    assert await verifier.refresh()
    with pytest.raises(AuthError) as info:
        await verifier.verify(old_token)  # was cached: the refresh must drop it
    assert info.value.reason == "kid_unknown"
    with pytest.raises(AuthError):
        await verifier.verify(old_token)  # ...for good, not just for one lookup
    assert (await verifier.verify(new_token)).sub == "bob"


async def test_periodic_refresh_picks_up_retirement(issuer, make_verifier):
    settings = make_settings(issuer.url).model_copy(update={"jwks_refresh_s": 0.1})  # below the config minimum
    verifier = await make_verifier(issuer.url, settings=settings)
    old_token = issuer.mint("alice")
    assert (await verifier.verify(old_token)).sub == "alice"
    issuer.rotate("RS256")
    retired_kid = jwt.get_unverified_header(old_token)["kid"]
    fetched = issuer.jwks_requests
    issuer.retire(retired_kid)
    await wait_until(lambda: issuer.jwks_requests > fetched)
    await asyncio.sleep(0.05)
    with pytest.raises(AuthError):
        await verifier.verify(old_token)


def _unknown_kid_token(issuer, key, kid: str) -> str:
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 600}
    return jwt.encode(claims, key, "ES256", headers={"kid": kid})


async def test_unknown_kid_flood_fetches_at_most_once_per_interval(issuer, make_verifier):
    clock = FakeClock()
    verifier = await make_verifier(issuer.url, clock=clock)
    attacker = ec.generate_private_key(ec.SECP256R1())
    clock.advance(31)
    fetched = issuer.jwks_requests

    flood = [_unknown_kid_token(issuer, attacker, f"made-up-{n}") for n in range(100)]
    results = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
    assert all(isinstance(r, AuthError) and r.reason == "kid_unknown" for r in results)
    assert issuer.jwks_requests == fetched + 1

    second = [_unknown_kid_token(issuer, attacker, f"again-{n}") for n in range(100)]
    await asyncio.gather(*(verifier.verify(t) for t in second), return_exceptions=True)
    assert issuer.jwks_requests == fetched + 1  # still inside the interval

    clock.advance(31)
    with pytest.raises(AuthError):
        await verifier.verify(_unknown_kid_token(issuer, attacker, "later"))
    assert issuer.jwks_requests == fetched + 2


async def test_concurrent_requests_with_a_new_kid_share_one_fetch(issuer, make_verifier):
    clock = FakeClock()
    verifier = await make_verifier(issuer.url, clock=clock)
    issuer.rotate("ES256")
    clock.advance(31)
    fetched = issuer.jwks_requests
    tokens = [issuer.mint(f"user{n}", alg="ES256") for n in range(50)]
    principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [p.sub for p in principals] == [f"user{n}" for n in range(50)]
    assert issuer.jwks_requests == fetched + 1


async def test_unreachable_idp_fails_closed_then_recovers(make_verifier):
    port = free_port()
    verifier = await make_verifier(f"http://127.0.0.1:{port}")
    assert not verifier.ready
    assert verifier.status()["ready"] is False and verifier.status()["last_error"]
    with pytest.raises(GatewayError) as info:
        await verifier.verify("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    assert (info.value.status, info.value.code) == (503, "auth_unavailable")

    async with DevIssuer(port=port, audience=AUDIENCE) as late_issuer:
        await wait_until(lambda: verifier.ready)  # the background retry found it
        assert (await verifier.verify(late_issuer.mint("alice"))).sub == "alice"
        assert verifier.status()["last_error"] is None


async def test_discovery_issuer_mismatch_is_not_trusted(issuer, make_verifier):
    verifier = await make_verifier(issuer.url + "/")  # same server, but `iss` would differ from the configured one
    assert not verifier.ready
    assert "differs from the configured" in verifier.status()["last_error"]
    with pytest.raises(GatewayError) as info:
        await verifier.verify(issuer.mint("alice"))
    assert info.value.status == 503


async def test_failed_refresh_keeps_the_last_good_keys(issuer, make_verifier):
    verifier = await make_verifier(issuer.url)
    await issuer.stop()
    assert not await verifier.refresh()
    assert verifier.ready and verifier.status()["last_error"]
    assert (await verifier.verify(issuer.mint("alice"))).sub == "alice"


def _rsa_jwk(bits: int, *, private: bool = False, **extra) -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return {**jwt.get_algorithm_by_name("RS256").to_jwk(key if private else key.public_key(), as_dict=True), **extra}


def test_parse_jwks_keeps_only_safe_signing_keys():
    good = _rsa_jwk(2048, kid="good", alg="RS256", use="sig")
    p384 = jwt.get_algorithm_by_name("ES384").to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    secret = base64.urlsafe_b64encode(b"s" * 32).rstrip(b"=").decode()
    document = {"keys": [
        good,
        _rsa_jwk(1024, kid="short"),
        _rsa_jwk(2048, kid="encryption", use="enc"),
        _rsa_jwk(2048, kid="declared-hs", alg="HS256"),
        _rsa_jwk(2048, kid="declared-es", alg="ES256"),
        _rsa_jwk(2048, kid="declared-ps", alg="PS256"),  # a fitting alg, but not in our allowlist
        {"kty": "oct", "kid": "symmetric", "k": secret},
        {**p384, "kid": "p384"},
        _rsa_jwk(2048, private=True, kid="private", alg="RS256"),
        "not-an-object",
    ]}
    keys = parse_jwks(document, ["RS256", "ES256"])
    assert list(keys.by_kid) == ["good"] and keys.by_kid["good"].algorithms == ("RS256",)
    assert keys.lone is keys.by_kid["good"] and keys.count == 1
    with pytest.raises(ValueError):
        parse_jwks({"keys": [_rsa_jwk(1024, kid="short")]}, ["RS256"])


async def test_a_cancelled_request_does_not_cancel_the_shared_fetch(issuer, make_verifier):
    clock = FakeClock()
    verifier = await make_verifier(issuer.url, clock=clock)
    issuer.rotate("RS256")
    clock.advance(31)
    leaving = asyncio.create_task(verifier.verify(issuer.mint("gone")))
    staying = asyncio.create_task(verifier.verify(issuer.mint("stays")))
    await asyncio.sleep(0)  # both are now waiting on the one refetch
    leaving.cancel()
    assert (await staying).sub == "stays"
