"""Authentication failures as gateway errors, with RFC 6750 ``WWW-Authenticate`` challenges."""
from __future__ import annotations

from gateway.errors import GatewayError

REALM = "gateway"


def _quotable(text: str) -> str:
    """RFC 6750 §3 allows only %x20-21 / %x23-5B / %x5D-7E inside the quoted values: drop anything else."""
    return "".join(ch for ch in text if " " <= ch <= "~" and ch not in '"\\')


def bearer_challenge(error: str | None = None, description: str | None = None) -> str:
    """`Bearer realm="gateway"`, plus `error` / `error_description` when the client did send credentials."""
    parts = [f'Bearer realm="{REALM}"']
    if error:
        parts.append(f'error="{_quotable(error)}"')
    if error and description:
        parts.append(f'error_description="{_quotable(description)}"')
    return ", ".join(parts)


class AuthError(GatewayError):
    """401 `invalid_token`. ``reason`` is a short stable label for logs, metrics and tests; the message says what
    to do and never contains the token.

    ``error`` is the RFC 6750 error attribute of the challenge: `invalid_token` (default), `invalid_request`
    (malformed Authorization header), or None when no credentials were sent (§3.1: no error code then).
    """

    def __init__(self, reason: str, message: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(401, "invalid_token", message, headers={"WWW-Authenticate": bearer_challenge(error, message)})
        self.reason = reason


def auth_unavailable() -> GatewayError:
    """No signing keys are loaded: fail closed with 503 rather than letting anything through."""
    return GatewayError(
        503,
        "auth_unavailable",
        "The gateway has not loaded the identity provider's signing keys yet; retry shortly.",
        headers={"Retry-After": "5"},
    )
