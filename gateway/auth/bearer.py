"""The bearer token of a request: exactly one `Authorization: Bearer <token>` header (RFC 6750), else a 401.

One set of rules for the proxy path (`gateway.filters.auth`) and the admin API: two Authorization headers,
another scheme or a header with more than one token are refused with the same reasons and challenges.
"""
from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDictProxy, MultiDictProxy

from gateway.auth.errors import AuthError

MISSING_MESSAGE = "Missing bearer token: send Authorization: Bearer <access token>"


def bearer_token(headers: CIMultiDictProxy[str] | MultiDictProxy[str] | Mapping[str, str]) -> str:
    """The token of the single `Authorization: Bearer <token>` header, else an `AuthError` (401 invalid_token)."""
    getall = getattr(headers, "getall", None)
    values: list[str] = list(getall("Authorization", [])) if getall else (
        [headers["Authorization"]] if "Authorization" in headers else [])
    if not values:
        # RFC 6750 §3.1: no credentials at all -> a bare challenge without an error code
        raise AuthError("missing", MISSING_MESSAGE, error=None)
    if len(values) > 1:
        raise AuthError("duplicate_header", "Send exactly one Authorization header", error="invalid_request")
    parts = values[0].split()
    if not parts or parts[0].lower() != "bearer":
        raise AuthError("not_bearer", MISSING_MESSAGE, error=None)
    if len(parts) != 2:
        raise AuthError("malformed_header", "Authorization must be: Bearer <access token> (one token)",
                        error="invalid_request")
    return parts[1]
