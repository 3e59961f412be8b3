"""The development issuer: what it publishes, the /token convenience endpoint, key rotation, standalone mode."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import jwt

from gateway.auth.dev_issuer import DevIssuer

from .conftest import AUDIENCE

_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


async def test_discovery_and_public_jwks(issuer, session):
    async with session.get(f"{issuer.url}/.well-known/openid-configuration") as resp:
        discovery = await resp.json()
    assert discovery["issuer"] == issuer.url
    assert discovery["jwks_uri"] == f"{issuer.url}/jwks"
    assert discovery["token_endpoint"] == f"{issuer.url}/token"
    assert discovery["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]

    async with session.get(discovery["jwks_uri"]) as resp:
        keys = (await resp.json())["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]
    for key in keys:
        assert key["use"] == "sig" and key["kid"]
        assert not _PRIVATE_MEMBERS & key.keys(), "private key material must never be published"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)


async def test_token_endpoint_form_and_json(issuer, verifier, session):
    async with session.post(f"{issuer.url}/token", data={"sub": "alice", "groups": "dev,ops"}) as resp:
        body = await resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert (await verifier.verify(body["access_token"])).groups == ("dev", "ops")

    async with session.post(f"{issuer.url}/token", json={"sub": "bob", "groups": ["sre"], "ttl_s": 60}) as resp:
        body = await resp.json()
    principal = await verifier.verify(body["access_token"])
    assert (principal.sub, principal.groups, body["expires_in"]) == ("bob", ("sre",), 60)

    async with session.post(f"{issuer.url}/token", json={"groups": ["x"]}) as resp:
        assert resp.status == 400
    assert issuer.fetch_count["token"] == 3


async def test_rotate_and_retire_change_what_is_published(issuer):
    first = issuer.current_kid("RS256")
    second = issuer.rotate("RS256")
    assert second != first and issuer.current_kid("RS256") == second
    assert jwt.get_unverified_header(issuer.mint("a"))["kid"] == second
    assert {first, second} <= {k["kid"] for k in issuer.jwks()["keys"]}
    issuer.retire(first)
    assert first not in {k["kid"] for k in issuer.jwks()["keys"]}


async def test_standalone_process_serves_verifiable_tokens(make_verifier, session):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.auth.dev_issuer", "--port", "0", "--audience", AUDIENCE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=root, env=env,
    )
    try:
        url = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with session.post(f"{url}/token", data={"sub": "alice", "groups": ["dev", "ops"]}) as resp:
            token = (await resp.json())["access_token"]
        verifier = await make_verifier(url)
        assert (await verifier.verify(token)).groups == ("dev", "ops")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_in_process_issuer_binds_a_real_port():
    async with DevIssuer() as one, DevIssuer() as two:
        assert one.port and two.port and one.port != two.port
        assert one.url == f"http://127.0.0.1:{one.port}"
