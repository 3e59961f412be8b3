"""The bearer token of an admin request, under the same rules as the proxy path (`gateway.filters.auth`).

The admin API must refuse exactly what the proxy refuses (two Authorization headers, another scheme, a header
with more than one token), with the same reasons and RFC 6750 challenges; it does not run the filter chain, so
the rules are applied here to the request headers directly. Keep the two in step (the admin tests pin them).
"""
from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDictProxy, MultiDictProxy

from gateway.auth.errors import AuthError
from gateway.filters.auth import MISSING_MESSAGE


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
