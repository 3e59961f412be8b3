"""OIDC bearer tokens verified by a gateway process against a real issuer over HTTP."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization

from tests.e2e.helpers import backend_stats, eventually
from tests.support import ThreadedIssuer, free_port, gateway_config, start_gateway

CHAT = {"model": "fake-reasoner-1", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "fake-claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(issuer, **over) -> dict:
    now = int(time.time())
    return {"iss": issuer.url, "sub": "mallory", "aud": "reasoning-gateway", "iat": now, "exp": now + 600,
            "groups": ["admins"], **over}


def alg_none_token(issuer) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": issuer.issuer.current_kid("RS256")}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(issuer)).encode())}."


def hs256_with_public_key_token(issuer) -> str:
    """The classic key-confusion forgery: HMAC-sign with the RSA public key (as published) as the secret."""
    kid = issuer.issuer.current_kid("RS256")
    pem = issuer.issuer.private_key(kid).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}."
                     f"{_b64(json.dumps(_claims(issuer)).encode())}")
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


BAD_TOKENS = {
    "alg_none": alg_none_token,
    "hs256_public_key": hs256_with_public_key_token,
    "expired": lambda iss: iss.mint("alice", ["engineers"], iat=time.time() - 7200, ttl_s=3600),
    "wrong_audience": lambda iss: iss.mint("alice", ["engineers"], aud="some-other-app"),
    "wrong_issuer": lambda iss: iss.mint("alice", ["engineers"], iss="http://127.0.0.1:1/evil"),
    "tampered_payload": lambda iss: _tamper(iss.mint("alice", ["engineers"])),
}


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["admins"]
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


async def _status(http, url, token, path="/v1/chat/completions", body=CHAT):
    async with http.post(url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_tokens_pass(gateway, backend, issuer, http, alg):
    before = await backend_stats(backend)
    status, body = await _status(http, gateway, issuer.mint("alice", ["engineers"], alg=alg))
    assert status == 200, body
    assert body["object"] == "chat.completion"
    assert (await backend_stats(backend))["started"] == before["started"] + 1


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_tokens_get_401_openai_shape_and_never_reach_upstream(gateway, backend, issuer, http, kind):
    token = BAD_TOKENS[kind](issuer)
    before = await backend_stats(backend)
    async with http.post(gateway + "/v1/chat/completions", json=CHAT,
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json()
        assert resp.status == 401, body
        challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
        assert resp.headers["X-Gateway-Request-Id"]
    assert body["error"]["code"] == "invalid_token"
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"] and token not in json.dumps(body)
    assert (await backend_stats(backend))["started"] == before["started"]


@pytest.mark.parametrize("kind", ["alg_none", "expired", "wrong_audience"])
async def test_bad_tokens_on_messages_get_anthropic_shape(gateway, backend, issuer, http, kind):
    before = await backend_stats(backend)
    async with http.post(gateway + "/v1/messages", json=MESSAGES,
                         headers={"Authorization": f"Bearer {BAD_TOKENS[kind](issuer)}",
                                  "anthropic-version": "2023-06-01"}) as resp:
        body = await resp.json()
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_token" and body["error"]["message"]
    assert "code" not in body["error"]
    assert (await backend_stats(backend))["started"] == before["started"]


async def test_missing_token_gets_bare_challenge(gateway, backend, http):
    before = await backend_stats(backend)
    async with http.post(gateway + "/v1/chat/completions", json=CHAT) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
        assert "error=" not in resp.headers["WWW-Authenticate"]  # RFC 6750 §3.1: no credentials, no error code
        assert (await resp.json())["error"]["code"] == "invalid_token"
    assert (await backend_stats(backend))["started"] == before["started"]


async def test_key_rotation_new_kid_passes_after_refetch(gateway, issuer, http):
    old_token = issuer.mint("alice", ["engineers"])
    assert (await _status(http, gateway, old_token))[0] == 200
    fetches = issuer.issuer.jwks_requests

    new_kid = issuer.rotate("RS256")
    new_token = issuer.mint("alice", ["engineers"])
    assert json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "==="))["kid"] == new_kid

    async def new_kid_accepted() -> bool:
        return (await _status(http, gateway, new_token))[0] == 200

    # The unknown kid makes the gateway refetch the JWKS (at most once per jwks_min_refetch_s = 1 s).
    assert await eventually(new_kid_accepted, timeout=4, interval=0.3)
    assert issuer.issuer.jwks_requests > fetches
    assert (await _status(http, gateway, old_token))[0] == 200, "the previous key is still published"

    # A kid the issuer never published stays refused, refetch or not.
    forged = issuer.mint("alice", ["engineers"], headers={"kid": "rs256-not-published"})
    status, body = await _status(http, gateway, forged)
    assert status == 401 and body["error"]["code"] == "invalid_token"


# --- IdP unreachable at start-up --------------------------------------------------------------------------------

@pytest.fixture
def idp_down_gateway(backend):
    port = free_port()
    cfg = gateway_config(f"http://127.0.0.1:{port}", backend,
                         auth={"jwks_retry_initial_s": 0.2, "jwks_retry_max_s": 0.4, "http_timeout_s": 1})
    proc, url = start_gateway(cfg, ready=False)
    issuer: list[ThreadedIssuer] = []
    yield url, port, issuer
    proc.stop()
    for iss in issuer:
        iss.close()


async def test_idp_unreachable_fails_closed_then_recovers(idp_down_gateway, backend, issuer, http):
    url, port, started = idp_down_gateway
    async with http.get(url + "/readyz") as resp:
        report = await resp.json()
        assert resp.status == 503
    assert report["ready"] is False and report["checks"]["idp"]["ready"] is False

    before = await backend_stats(backend)
    # Any token, even one a real issuer signed: without keys nobody gets in.
    async with http.post(url + "/v1/chat/completions", json=CHAT,
                         headers={"Authorization": f"Bearer {issuer.mint()}"}) as resp:
        body = await resp.json()
        assert resp.status == 503
        assert resp.headers.get("Retry-After")
    assert body["error"]["code"] == "auth_unavailable"
    assert (await backend_stats(backend))["started"] == before["started"]

    late = ThreadedIssuer(port=port)
    started.append(late)

    async def ready() -> bool:
        async with http.get(url + "/readyz") as r:
            return r.status == 200

    assert await eventually(ready, timeout=5, interval=0.1)
    async with http.get(url + "/readyz") as resp:
        assert (await resp.json())["checks"]["idp"]["ready"] is True
    status, body = await _status(http, url, late.mint("alice", ["engineers"]))
    assert status == 200, body
    # A token from a different issuer (the session one) is still refused.
    assert (await _status(http, url, issuer.mint()))[0] == 401
