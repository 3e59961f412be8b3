"""Hostile and broken tokens: each ends as a 401 invalid_token local reply with the reason of the check that
caught it (so removing that check makes its case fail), and no exception escapes the auth filter."""
from __future__ import annotations

import hashlib
import hmac
import random
import string
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from multidict import CIMultiDict

from gateway.auth.errors import AuthError
from gateway.exchange import Exchange
from gateway.filters.auth import AuthFilter
from gateway.filters.base import Respond

from .conftest import AUDIENCE, b64url

_ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ATTACKER_EC = ec.generate_private_key(ec.SECP256R1())


def _claims(issuer, **extra):
    now = int(time.time())
    return {"iss": issuer.url, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 600, **extra}


def _alg_none(issuer):
    header = {"alg": "none", "typ": "JWT", "kid": issuer.current_kid("RS256")}
    return f"{b64url(header)}.{b64url(_claims(issuer))}."


def _hs256_with_public_pem(issuer):
    # the classic key-confusion attack: the RSA public key (public knowledge) used as an HMAC secret
    kid = issuer.current_kid("RS256")
    pem = issuer.private_key(kid).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64url({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64url(_claims(issuer))}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def _es256_under_rsa_kid(issuer):
    return jwt.encode(_claims(issuer), _ATTACKER_EC, "ES256", headers={"kid": issuer.current_kid("RS256")})


def _other_key_known_kid(issuer):
    return jwt.encode(_claims(issuer), _ATTACKER_RSA, "RS256", headers={"kid": issuer.current_kid("RS256")})


def _tampered_payload(issuer):
    header, _, signature = issuer.mint("alice").split(".")
    return f"{header}.{b64url(_claims(issuer, sub='admin'))}.{signature}"


def _jku_to_attacker_keys(issuer):
    # jku/x5u are never followed: keys come only from the configured issuer's discovery document
    headers = {"kid": "attacker-key", "jku": "http://127.0.0.1:1/jwks"}
    return jwt.encode(_claims(issuer), _ATTACKER_RSA, "RS256", headers=headers)


def _three_dots(issuer):
    return issuer.mint("alice") + ".e30"


def _malformed_base64(issuer):
    _, payload, signature = issuer.mint("alice").split(".")
    return f"eyJhbGciOiJSUzI1NiJ9a.{payload}.{signature}"  # header segment of impossible length (4n+1)


def _malformed_header_json(issuer):
    _, payload, signature = issuer.mint("alice").split(".")
    return f"{b64url(b'{alg: RS256')}.{payload}.{signature}"


def _now():
    return time.time()


ATTACKS = {
    "alg_none": (_alg_none, "alg_not_allowed", {}),
    "hs256_rsa_public_pem": (_hs256_with_public_pem, "alg_not_allowed", {}),
    "alg_outside_allowlist": (lambda i: i.mint("alice", alg="ES256"), "alg_not_allowed", {"algorithms": ["RS256"]}),
    "es256_under_rsa_kid": (_es256_under_rsa_kid, "alg_key_mismatch", {}),
    "other_key_known_kid": (_other_key_known_kid, "bad_signature", {}),
    "tampered_payload": (_tampered_payload, "bad_signature", {}),
    "stripped_signature": (lambda i: i.mint("alice").rsplit(".", 1)[0] + ".", "bad_signature", {}),
    "jku_header": (_jku_to_attacker_keys, "kid_unknown", {}),
    "no_kid_two_keys": (lambda i: i.mint("alice", headers={"kid": None}), "kid_missing", {}),
    "wrong_iss": (lambda i: i.mint("alice", iss="https://evil.example"), "issuer", {}),
    "wrong_aud": (lambda i: i.mint("alice", aud="another-app"), "audience", {}),
    "missing_aud": (lambda i: i.mint("alice", claims={"aud": None}), "missing_claim", {}),
    "expired": (lambda i: i.mint("alice", iat=_now() - 7200, ttl_s=3600), "expired", {}),
    "future_nbf": (lambda i: i.mint("alice", nbf=_now() + 600), "not_yet_valid", {}),
    "future_iat": (lambda i: i.mint("alice", iat=_now() + 600), "not_yet_valid", {}),
    "too_old": (lambda i: i.mint("alice", iat=_now() - 1000), "too_old", {"max_token_age_s": 300}),
    "missing_exp": (lambda i: i.mint("alice", ttl_s=None), "missing_claim", {}),
    "missing_iat": (lambda i: i.mint("alice", claims={"iat": None}), "missing_claim", {}),
    "missing_sub": (lambda i: i.mint("alice", claims={"sub": None}), "missing_claim", {}),
    "string_iat": (lambda i: i.mint("alice", claims={"iat": str(int(_now()))}), "malformed_claim", {}),
    "unknown_crit_header": (lambda i: i.mint("alice", headers={"crit": ["x-magic"], "x-magic": 1}), "invalid", {}),
    "malformed_base64": (_malformed_base64, "malformed", {}),
    "malformed_header_json": (_malformed_header_json, "malformed", {}),
    "three_dots": (_three_dots, "not_a_jws", {}),
    "non_ascii_garbage": (lambda i: "ëÿ☃.\u202e.\x00", "not_a_jws", {}),
    "padded_base64": (lambda i: i.mint("alice").replace(".", "=.", 1), "not_a_jws", {}),
    "oversized": (lambda i: i.mint("alice", claims={"pad": "x" * 9000}), "too_large", {}),
}


def _exchange(token: str) -> Exchange:
    return Exchange("POST", "/v1/chat/completions", request_headers=CIMultiDict(Authorization=f"Bearer {token}"))


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_is_rejected_by_its_own_check(issuer, make_verifier, name):
    build, reason, overrides = ATTACKS[name]
    verifier = await make_verifier(issuer.url, **overrides)
    token = build(issuer)
    ex = _exchange(token)

    verdict = await AuthFilter(verifier).on_request(ex)

    assert isinstance(verdict, Respond)
    err = verdict.error
    assert isinstance(err, AuthError) and (err.status, err.code, err.reason) == (401, "invalid_token", reason)
    challenge = err.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="gateway", error="invalid_token", error_description="')
    assert token not in challenge and token not in err.message
    assert ex.principal is None


async def test_fuzzed_tokens_never_raise_anything_but_auth_error(issuer, verifier):
    rng = random.Random(20240601)
    good = issuer.mint("alice")
    alphabet = string.ascii_letters + string.digits + "-_.=+/ \x00é☃"
    accepted = 0
    for _ in range(400):
        chars = list(good)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(chars))
            action = rng.choice(("replace", "delete", "insert"))
            if action == "replace":
                chars[position] = rng.choice(alphabet)
            elif action == "delete":
                del chars[position]
            else:
                chars.insert(position, rng.choice(alphabet))
        try:
            principal = await verifier.verify("".join(chars))
        except AuthError:
            continue
        # a mutation may only touch unused low bits of the last base64 character and keep the same bytes
        assert principal.sub == "alice"
        accepted += 1
    assert accepted < 40
