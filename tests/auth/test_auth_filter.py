"""The auth filter: the Authorization header rules, verdicts, and that the header is left for the forwarder."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.auth.errors import AuthError, auth_unavailable
from gateway.exchange import Exchange
from gateway.filters.auth import MISSING_MESSAGE, AuthFilter
from gateway.filters.base import Continue, Respond
from gateway.principal import Principal


class RecordingVerifier:
    """Accepts any token, so a test passes only if the filter itself refused the header."""

    def __init__(self, error: Exception | None = None) -> None:
        self.tokens: list[str] = []
        self.error = error

    async def verify(self, token: str) -> Principal:
        self.tokens.append(token)
        if self.error:
            raise self.error
        return Principal(sub="alice")


def _exchange(*authorization: str) -> Exchange:
    headers = CIMultiDict([("Authorization", value) for value in authorization])
    return Exchange("POST", "/v1/chat/completions", request_headers=headers)


async def test_missing_header_gets_a_bare_challenge():
    verifier = RecordingVerifier()
    verdict = await AuthFilter(verifier).on_request(ex := _exchange())
    assert isinstance(verdict, Respond)
    err = verdict.error
    assert (err.status, err.code, err.message) == (401, "invalid_token", MISSING_MESSAGE)
    assert err.headers == {"WWW-Authenticate": 'Bearer realm="gateway"'}
    assert ex.principal is None and verifier.tokens == []
    assert ex.annotations["auth_failure"] == "missing"


async def test_two_authorization_headers_are_refused():
    verifier = RecordingVerifier()
    verdict = await AuthFilter(verifier).on_request(ex := _exchange("Bearer a.b.c", "Bearer d.e.f"))
    assert isinstance(verdict, Respond) and verdict.error.reason == "duplicate_header"
    assert 'error="invalid_request"' in verdict.error.headers["WWW-Authenticate"]
    assert ex.principal is None and verifier.tokens == []


@pytest.mark.parametrize("value", ["Basic YWxpY2U6c2VjcmV0", "Token abc", "abc.def.ghi"])
async def test_other_schemes_are_no_bearer_credentials(value):
    verifier = RecordingVerifier()
    verdict = await AuthFilter(verifier).on_request(_exchange(value))
    assert isinstance(verdict, Respond) and verdict.error.reason == "not_bearer"
    assert verdict.error.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
    assert verifier.tokens == []


@pytest.mark.parametrize("value", ["Bearer", "Bearer a.b.c extra"])
async def test_bearer_needs_exactly_one_token(value):
    verifier = RecordingVerifier()
    verdict = await AuthFilter(verifier).on_request(_exchange(value))
    assert isinstance(verdict, Respond) and verdict.error.reason == "malformed_header"
    assert verifier.tokens == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_scheme_is_case_insensitive_and_sets_principal(scheme):
    verifier = RecordingVerifier()
    ex = _exchange(f"{scheme} a.b.c")
    assert isinstance(await AuthFilter(verifier).on_request(ex), Continue)
    assert ex.principal == Principal(sub="alice") and verifier.tokens == ["a.b.c"]
    assert ex.request_headers["Authorization"] == f"{scheme} a.b.c"  # left for the forwarder to drop


@pytest.mark.parametrize("error", [AuthError("expired", "The token has expired"), auth_unavailable()])
async def test_verifier_errors_become_local_replies(error):
    verdict = await AuthFilter(RecordingVerifier(error)).on_request(ex := _exchange("Bearer a.b.c"))
    assert isinstance(verdict, Respond) and verdict.error is error and ex.principal is None
    assert ex.annotations["auth_failure"] == getattr(error, "reason", "auth_unavailable")


async def test_real_token_through_the_filter(issuer, verifier):
    ex = _exchange(f"bearer {issuer.mint('alice', ['dev'])}")
    assert isinstance(await AuthFilter(verifier).on_request(ex), Continue)
    assert (ex.principal.sub, ex.principal.groups) == ("alice", ("dev",))
