"""The auth filter: exactly one `Authorization: Bearer <token>` header, verified into ``ex.principal``.

Failures end the exchange with a local 401 (or 503 while the IdP's keys are not loaded); nothing raises. The
header itself stays in place: whether it reaches the upstream is the forwarder's decision.
"""
from __future__ import annotations

from typing import Protocol

from gateway.auth.bearer import MISSING_MESSAGE, bearer_token  # noqa: F401 - MISSING_MESSAGE re-exported
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.base import CONTINUE, Filter, Respond, Verdict
from gateway.principal import Principal


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
        try:
            ex.principal = await self._verifier.verify(bearer_token(ex.request_headers))
        except GatewayError as err:
            return Respond(err)
        return CONTINUE
