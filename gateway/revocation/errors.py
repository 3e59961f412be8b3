"""The errors revocations answer with. Messages say what happened; none echoes a token, a token id or a reason."""
from __future__ import annotations

from gateway.auth.errors import bearer_challenge
from gateway.errors import GatewayError
from gateway.filters.base import StreamTerminated

REVOKED_MESSAGE = "The presented credentials have been revoked by an administrator; contact your administrator."
STALE_MESSAGE = "The gateway cannot confirm that its revocation list is current; retry shortly."
STREAM_REVOKED_MESSAGE = "The credentials used for this request were revoked; the stream was ended."


class RevocationStoreUnavailable(Exception):
    """Redis could not be reached (or refused) while adding, listing or deleting. The admin endpoint answers 503.

    A write whose reply was lost may still have taken effect: a retried add then makes a second revocation with
    its own id (harmless: both match, both expire), so `list` is the way to check."""


def token_revoked() -> GatewayError:
    """401 `token_revoked` with the RFC 6750 challenge every other 401 carries."""
    return GatewayError(401, "token_revoked", REVOKED_MESSAGE,
                        headers={"WWW-Authenticate": bearer_challenge("invalid_token", REVOKED_MESSAGE)})


def revocations_stale() -> GatewayError:
    """503 `auth_unavailable`: the mirror lost Redis for longer than `max_staleness_s`, so fail closed."""
    return GatewayError(503, "auth_unavailable", STALE_MESSAGE, headers={"Retry-After": "2"})


def stream_revoked() -> StreamTerminated:
    """What an in-flight exchange is terminated with when its principal is revoked (`stream_terminated`)."""
    return StreamTerminated(STREAM_REVOKED_MESSAGE)
