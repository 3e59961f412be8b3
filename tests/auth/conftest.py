"""Fixtures: a real DevIssuer on 127.0.0.1:0 and verifiers fetching its keys over HTTP."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from typing import Any

import aiohttp
import pytest

from gateway.auth.dev_issuer import DevIssuer
from gateway.auth.oidc import OidcVerifier
from gateway.config import AuthSettings

AUDIENCE = "reasoning-gateway"


class FakeClock:
    """Wall clock that tests can move forward (rate limits, token age); pyjwt's exp/nbf/iat use the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(issuer_url: str, **overrides: Any) -> AuthSettings:
    return AuthSettings(issuer=issuer_url, audience=[AUDIENCE], **overrides)


def b64url(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def issuer():
    async with DevIssuer(audience=AUDIENCE) as running:
        yield running


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def make_verifier(session):
    """Factory: ``await make_verifier(url, clock=..., settings=..., **auth_overrides)``; closed at teardown."""
    created: list[OidcVerifier] = []

    async def factory(issuer_url: str, *, clock=time.time, settings: AuthSettings | None = None, **overrides):
        verifier = OidcVerifier(
            settings or make_settings(issuer_url, **overrides), clock=clock, retry_initial_s=0.05, retry_max_s=0.2
        )
        created.append(verifier)
        await verifier.start(session)
        return verifier

    yield factory
    for verifier in created:
        await verifier.close()


@pytest.fixture
async def verifier(issuer, make_verifier):
    return await make_verifier(issuer.url)
