"""The auth filter: exactly one `Authorization: Bearer <token>` header, verified into ``ex.principal``.

Failures end the exchange with a local 401 (or 503 while the IdP's keys are not loaded); nothing raises. The
header itself stays in place: whether it reaches the upstream is the forwarder's decision.
"""
from __future__ import annotations

from typing import Protocol

from gateway.auth.errors import AuthError
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.base import CONTINUE, Filter, Respond, Verdict
from gateway.principal import Principal

MISSING_MESSAGE = "Missing bearer token: send Authorization: Bearer <access token>"


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


class AuthFilter(Filter):
    name = "auth"

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def on_request(self, ex: Exchange) -> Verdict:
        verdict = await self._authenticate(ex)
        if isinstance(verdict, Respond):
            # the access log and audit get the stable reason label; the client only gets the message
            ex.annotations["auth_failure"] = getattr(verdict.error, "reason", verdict.error.code)
        return verdict

    async def _authenticate(self, ex: Exchange) -> Verdict:
        values = ex.request_headers.getall("Authorization", [])
        if not values:
            # RFC 6750 §3.1: no credentials at all -> a bare challenge without an error code
            return Respond(AuthError("missing", MISSING_MESSAGE, error=None))
        if len(values) > 1:
            # two headers are ambiguous (which one would a proxy further down pick?): refuse rather than guess
            return Respond(AuthError("duplicate_header", "Send exactly one Authorization header", error="invalid_request"))
        parts = values[0].split()
        if not parts or parts[0].lower() != "bearer":
            # another scheme (Basic, an API key...) is "no bearer credentials", again without an error code
            return Respond(AuthError("not_bearer", MISSING_MESSAGE, error=None))
        if len(parts) != 2:
            return Respond(AuthError(
                "malformed_header", "Authorization must be: Bearer <access token> (one token)", error="invalid_request"
            ))
        try:
            ex.principal = await self._verifier.verify(parts[1])
        except GatewayError as err:
            return Respond(err)
        return CONTINUE
