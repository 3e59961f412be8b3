"""Verified claims -> :class:`Principal`. Only what policy and audit need is kept; raw tokens never are."""
from __future__ import annotations

import hashlib
from typing import Any

from gateway.auth.errors import AuthError
from gateway.config import AuthSettings
from gateway.principal import Principal

_MISSING = object()


def groups_at(claims: dict[str, Any], path: str) -> tuple[str, ...]:
    """Groups at a dotted path (`realm_access.roles`). A string is one group; missing or null is no groups."""
    if path in claims:
        value = claims[path]  # namespaced claim names contain dots themselves (`https://example.com/groups`)
    else:
        value = claims
        for part in path.split("."):
            if not isinstance(value, dict):
                raise AuthError("groups_malformed", f"The token's {path} claim path does not lead to a list of groups")
            value = value.get(part, _MISSING)
            if value is _MISSING:
                return ()
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(g, str) for g in value):
        return tuple(value)
    raise AuthError("groups_malformed", f"The token's {path} claim must be a list of strings")


def _epoch(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # pyjwt accepts anything int() accepts (e.g. "123"); time arithmetic needs a real JSON number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuthError("malformed_claim", f"The token's {name} claim must be a number of seconds since the epoch")
    return float(value)


def principal_from(claims: dict[str, Any], settings: AuthSettings) -> Principal:
    sub = claims.get(settings.subject_claim)
    if not isinstance(sub, str) or not sub:
        raise AuthError("malformed_claim", f"The token's {settings.subject_claim} claim must be a non-empty string")
    client_id = claims.get("azp") or claims.get("client_id")
    jti = claims.get("jti")
    scope = claims.get("scope")
    return Principal(
        sub=sub,
        groups=groups_at(claims, settings.groups_claim),
        client_id=client_id if isinstance(client_id, str) else None,
        token_id_hash=hashlib.sha256(jti.encode()).hexdigest()[:32] if isinstance(jti, str) and jti else None,
        issued_at=_epoch(claims, "iat"),
        expires_at=_epoch(claims, "exp"),
        issuer=claims.get("iss", ""),
        extra={"scope": scope} if isinstance(scope, str) else {},
    )
