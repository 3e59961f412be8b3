"""OIDC access-token verification: cheap shape checks first, then pyjwt does signature and claim validation.

Order matters: size and shape are checked before anything is decoded, the `alg` allowlist before any key is
chosen, and the key's own type decides which algorithms it may verify (so an RSA public key can never be used as
an HMAC secret or an EC key for RS256). Every failure is an :class:`AuthError`; 503 when no keys are loaded.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import structlog

from gateway.auth.cache import VerifiedTokenCache, token_key
from gateway.auth.claims import principal_from
from gateway.auth.errors import AuthError, auth_unavailable
from gateway.auth.jwks import JwksSource, SigningKey
from gateway.config import AuthSettings
from gateway.principal import Principal

log = structlog.get_logger(__name__)

# Compact JWS: three base64url segments, no padding. The signature may be empty only so that `alg: none` tokens
# reach the allowlist check and are reported as such.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# sub/jti type errors are their own classes only in newer pyjwt; older ones report them as plain validation errors
_BAD_CLAIM_TYPES = tuple(
    getattr(jwt.exceptions, name)
    for name in ("InvalidIssuedAtError", "InvalidSubjectError", "InvalidJTIError")
    if hasattr(jwt.exceptions, name)
)


def _pyjwt_failure(exc: Exception, settings: AuthSettings) -> AuthError:
    """Map a pyjwt exception to a reason and a message the caller can act on (never the token or claim values)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return AuthError("expired", "The token has expired: obtain a new access token")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return AuthError("not_yet_valid", "The token is not valid yet (nbf or iat in the future): check clock sync")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return AuthError("missing_claim", f"The token lacks the required {exc.claim} claim")
    if isinstance(exc, jwt.InvalidAudienceError):
        audiences = ", ".join(settings.audience)
        return AuthError("audience", f"The token is for another audience: request a token for {audiences}")
    if isinstance(exc, jwt.InvalidIssuerError):
        return AuthError("issuer", f"The token is from an untrusted issuer: use a token issued by {settings.issuer}")
    if isinstance(exc, jwt.InvalidSignatureError):
        return AuthError("bad_signature", "The token signature does not verify with the issuer's published key")
    if isinstance(exc, _BAD_CLAIM_TYPES):
        return AuthError("malformed_claim", "The token has a malformed iat, sub or jti claim")
    if isinstance(exc, jwt.DecodeError):
        return AuthError("malformed", "The token is not a well-formed JWT: header and payload must be base64url JSON")
    return AuthError("invalid", "The token could not be validated: obtain a new access token")


class OidcVerifier:
    """Turns a bearer token into a :class:`Principal`, or raises (401 AuthError / 503 auth_unavailable)."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.time,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        cache_entries: int = 10_000,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._jwks = JwksSource(settings, clock=clock, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._cache = VerifiedTokenCache(cache_entries) if cache_entries > 0 else None
        self._required = sorted({"exp", "iat", "iss", settings.subject_claim})

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Load discovery and keys; never raises. If the IdP is down, retries in the background until it is up."""
        await self._jwks.start(session)

    async def close(self) -> None:
        await self._jwks.close()

    async def refresh(self) -> bool:
        """Refetch the JWKS now (what the periodic refresh does); True on success."""
        return await self._jwks.refresh()

    @property
    def ready(self) -> bool:
        return self._jwks.keys is not None

    def status(self) -> dict[str, Any]:
        """For /readyz: ready, keys count, jwks_uri, last_refresh_age_s, last_error."""
        return {"issuer": self._settings.issuer, **self._jwks.status()}

    async def verify(self, token: str) -> Principal:
        if self._jwks.keys is None:
            raise auth_unavailable()  # fail closed: no keys means nobody gets in
        if len(token) > self._settings.max_token_bytes:
            raise AuthError("too_large", f"The token exceeds {self._settings.max_token_bytes} bytes")
        if not _COMPACT_JWS.fullmatch(token):
            raise AuthError("not_a_jws", "The bearer token is not a JWT: expected three base64url parts joined by dots")
        now = self._clock()
        cache_key = token_key(token)
        if self._cache is not None:
            cached = self._cache.get(cache_key, now, self._jwks.generation)
            if cached is not None:
                return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _pyjwt_failure(exc, self._settings) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._settings.algorithms:
            allowed = ", ".join(self._settings.algorithms)
            raise AuthError("alg_not_allowed", f"The token's signing algorithm is not accepted: use one of {allowed}")
        key = await self._key_for(header.get("kid"))
        generation = self._jwks.generation
        if alg not in key.algorithms:
            raise AuthError("alg_key_mismatch", "The token's alg does not match the type of the key named by its kid")
        claims = self._decode(token, key)
        principal = principal_from(claims, self._settings)
        self._check_age(principal, self._clock())
        if self._cache is not None:
            self._cache.put(cache_key, principal, self._cache_expiry(principal), now, generation)
        return principal

    async def _key_for(self, kid: Any) -> SigningKey:
        keys = self._jwks.keys
        assert keys is not None
        if kid is None:
            if keys.lone is not None:
                return keys.lone
            raise AuthError("kid_missing", "The token has no kid header but the issuer publishes several keys")
        key = keys.by_kid.get(kid)
        if key is None and await self._jwks.refetch_for_unknown_kid():
            # the IdP may have rotated since our last fetch; the refetch is shared and rate-limited
            key = self._jwks.keys.by_kid.get(kid)
        if key is None:
            raise AuthError("kid_unknown", "The token is signed with a key the issuer does not publish: get a new token")
        return key

    def _decode(self, token: str, key: SigningKey) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                # chosen from the allowlist and the key's type, never from the token header (RFC 8725 §2.1)
                algorithms=list(key.algorithms),
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={
                    "require": self._required,
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise _pyjwt_failure(exc, self._settings) from None
        except Exception as exc:  # pyjwt/cryptography surprises still end as a 401, never a 500 or a pass
            log.warning("token_verify_error", error=exc.__class__.__name__)
            raise AuthError("invalid", "The token could not be validated: obtain a new access token") from None

    def _check_age(self, principal: Principal, now: float) -> None:
        max_age = self._settings.max_token_age_s
        if max_age is not None and principal.issued_at is not None:
            if now - principal.issued_at > max_age + self._settings.leeway_s:
                raise AuthError("too_old", f"The token was issued more than {max_age:g} s ago: obtain a fresh token")

    def _cache_expiry(self, principal: Principal) -> float:
        expiry = principal.expires_at if principal.expires_at is not None else 0.0
        if self._settings.max_token_age_s is not None and principal.issued_at is not None:
            expiry = min(expiry, principal.issued_at + self._settings.max_token_age_s)
        return expiry
