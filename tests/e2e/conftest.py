"""End-to-end fixtures: real gateway, backend and IdP processes on loopback (see tests/conftest.py for the
session-wide `issuer`, `backend` and `gateway`)."""
from __future__ import annotations

import aiohttp
import pytest


@pytest.fixture
async def http():
    """A plain aiohttp client (no cookies kept, so every request stands alone)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
def token(issuer) -> str:
    return issuer.mint("alice", ["engineers"])


@pytest.fixture
def auth(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
