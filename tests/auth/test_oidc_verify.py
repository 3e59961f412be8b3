"""Valid tokens become Principals: algorithms, groups paths, subject and client claims, the lone-key rule, cache."""
from __future__ import annotations

import hashlib
import time

import jwt
import pytest

from gateway.auth.errors import AuthError
from gateway.principal import Principal

from .conftest import FakeClock


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_token_becomes_principal(issuer, verifier, alg):
    token = issuer.mint("alice", ["dev", "ops"], alg=alg, claims={"scope": "chat"})
    claims = jwt.decode(token, options={"verify_signature": False})

    principal = await verifier.verify(token)

    assert isinstance(principal, Principal)
    assert principal.sub == "alice"
    assert principal.groups == ("dev", "ops")
    assert principal.client_id == "gateway-dev"
    assert principal.token_id_hash == hashlib.sha256(claims["jti"].encode()).hexdigest()[:32]
    assert principal.issuer == issuer.url
    assert principal.issued_at == claims["iat"] and principal.expires_at == claims["exp"]
    assert principal.extra == {"scope": "chat"}
    assert jwt.get_unverified_header(token)["alg"] == alg


async def test_groups_from_nested_realm_access_roles(issuer, make_verifier):
    verifier = await make_verifier(issuer.url, groups_claim="realm_access.roles")
    token = issuer.mint("bob", ["ignored"], claims={"realm_access": {"roles": ["sre-approvers", "dev"]}})
    assert (await verifier.verify(token)).groups == ("sre-approvers", "dev")


async def test_dotted_claim_name_is_read_literally_first(issuer, make_verifier):
    verifier = await make_verifier(issuer.url, groups_claim="https://example.com/groups")
    token = issuer.mint("bob", claims={"https://example.com/groups": ["privacy-team"]})
    assert (await verifier.verify(token)).groups == ("privacy-team",)


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"groups": "solo"}, ("solo",)),
        ({"groups": None}, ()),
        ({"groups": []}, ()),
    ],
)
async def test_groups_shapes(issuer, verifier, claims, expected):
    assert (await verifier.verify(issuer.mint("carol", claims=claims))).groups == expected


async def test_missing_nested_groups_is_empty(issuer, make_verifier):
    verifier = await make_verifier(issuer.url, groups_claim="realm_access.roles")
    assert (await verifier.verify(issuer.mint("dave", claims={"realm_access": {}}))).groups == ()
    assert (await verifier.verify(issuer.mint("dave"))).groups == ()


@pytest.mark.parametrize("bad", [{"admins": True}, 7, ["ok", 3]])
async def test_groups_of_wrong_type_are_rejected(issuer, verifier, bad):
    with pytest.raises(AuthError) as info:
        await verifier.verify(issuer.mint("eve", claims={"groups": bad}))
    assert info.value.reason == "groups_malformed"


async def test_audience_list_needs_one_match(issuer, verifier):
    token = issuer.mint("alice", aud=["other-app", "reasoning-gateway"])
    assert (await verifier.verify(token)).sub == "alice"


async def test_custom_subject_claim(issuer, make_verifier):
    verifier = await make_verifier(issuer.url, subject_claim="preferred_username")
    assert (await verifier.verify(issuer.mint("x", claims={"preferred_username": "alice"}))).sub == "alice"
    with pytest.raises(AuthError) as info:
        await verifier.verify(issuer.mint("x"))
    assert info.value.reason == "missing_claim"


async def test_client_id_claim_when_no_azp(issuer, verifier):
    token = issuer.mint("svc", claims={"azp": None, "client_id": "batch-job"})
    assert (await verifier.verify(token)).client_id == "batch-job"


async def test_token_without_kid_uses_the_only_published_key(issuer, make_verifier):
    issuer.retire(issuer.current_kid("ES256"))
    verifier = await make_verifier(issuer.url)
    assert (await verifier.verify(issuer.mint("alice", headers={"kid": None}))).sub == "alice"


async def test_token_without_kid_is_rejected_when_several_keys(issuer, verifier):
    with pytest.raises(AuthError) as info:
        await verifier.verify(issuer.mint("alice", headers={"kid": None}))
    assert info.value.reason == "kid_missing"


async def test_cache_never_outlives_max_token_age(issuer, make_verifier):
    # valid now (age 320 s < 300 s + 30 s leeway), too old 15 s later: a cache that ignored the age would still pass
    clock = FakeClock()
    verifier = await make_verifier(issuer.url, clock=clock, max_token_age_s=300)
    token = issuer.mint("alice", iat=time.time() - 320)
    assert (await verifier.verify(token)).sub == "alice"
    clock.advance(15)
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    assert info.value.reason == "too_old"


async def test_status_reports_keys(issuer, verifier):
    status = verifier.status()
    assert verifier.ready and status["ready"] is True
    assert status["keys"] == 2 and status["last_error"] is None
    assert status["jwks_uri"] == f"{issuer.url}/jwks" and status["last_refresh_age_s"] >= 0
