"""The issuer's signing keys: OIDC discovery, JWKS fetch, periodic refresh and rate-limited refetch on unknown kid.

Every fetch runs in one shared in-flight task: concurrent callers await the same fetch, and an unknown-kid
refetch happens at most once per ``jwks_min_refetch_s`` (counted from the start of the last fetch of any kind), so
a flood of tokens with made-up kids cannot turn the gateway into a load generator against the IdP.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import AuthSettings

log = structlog.get_logger(__name__)

MAX_DOCUMENT_BYTES = 1024 * 1024
"""Discovery and JWKS documents are small; refuse to buffer anything bigger."""
MIN_RSA_BITS = 2048
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def key_fits(alg: str, kty: Any, crv: Any) -> bool:
    """Whether a key of this type/curve may verify ``alg``: an RSA key never verifies ES*, a P-256 key never ES384."""
    if alg.startswith(("RS", "PS")):
        return kty == "RSA"
    if alg in _EC_CURVES:
        return kty == "EC" and crv == _EC_CURVES[alg]
    if alg == "EdDSA":
        return kty == "OKP" and crv in ("Ed25519", "Ed448")
    return False


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str | None
    key: Any
    """The public key object (cryptography), as built by ``jwt.PyJWK``."""
    algorithms: tuple[str, ...]
    """Allowed algorithms this key may verify: its JWK `alg` if it names one, else all of its family."""


@dataclass(frozen=True, slots=True)
class KeySet:
    by_kid: dict[str, SigningKey] = field(default_factory=dict)
    lone: SigningKey | None = None
    """The only key when the JWKS publishes exactly one; a token without `kid` may then use it."""
    count: int = 0


def parse_jwks(document: dict, allowed: list[str]) -> KeySet:
    """Keep the keys we can safely use for signature checks; log (without key material) why others are skipped."""
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, list):
        raise ValueError("JWKS document has no `keys` list")
    usable: list[SigningKey] = []
    for raw in raw_keys:
        kid = raw.get("kid") if isinstance(raw, dict) else None
        skip = _skip_reason(raw, allowed)
        if skip is None:
            algs = tuple(a for a in ([raw["alg"]] if raw.get("alg") else allowed) if key_fits(a, raw["kty"], raw.get("crv")))
            try:
                key = jwt.PyJWK(raw, algorithm=algs[0]).key
            except jwt.PyJWTError as exc:
                skip = f"unparsable: {exc.__class__.__name__}"
            else:
                if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
                    skip = f"RSA key shorter than {MIN_RSA_BITS} bits"
                else:
                    usable.append(SigningKey(kid if isinstance(kid, str) else None, key, algs))
        if skip:
            log.warning("jwks_key_skipped", kid=kid if isinstance(kid, str) else None, reason=skip)
    if not usable:
        raise ValueError("JWKS has no usable signing keys for the configured algorithms")
    return KeySet(
        by_kid={k.kid: k for k in usable if k.kid is not None},
        lone=usable[0] if len(usable) == 1 else None,
        count=len(usable),
    )


def _skip_reason(raw: Any, allowed: list[str]) -> str | None:
    if not isinstance(raw, dict):
        return "not a JSON object"
    if raw.get("use", "sig") != "sig":
        return "not a signing key (use != sig)"
    if "d" in raw:
        return "private key material published"  # misconfigured IdP: do not build (or keep) private keys
    declared = raw.get("alg")
    if declared is not None and declared not in allowed:
        return "alg not in the allowlist"
    if not any(key_fits(a, raw.get("kty"), raw.get("crv")) for a in ([declared] if declared else allowed)):
        return "key type does not fit any allowed alg"
    return None


class JwksSource:
    """Holds the current :class:`KeySet` (None until the first successful fetch) and keeps it fresh."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.time,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._session: aiohttp.ClientSession | None = None
        self._jwks_uri: str | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._maintainer: asyncio.Task[None] | None = None
        self._last_fetch_started: float | None = None
        self._last_success: float | None = None
        self.keys: KeySet | None = None
        self.generation = 0
        """Bumped on every successful fetch, so caches of verified tokens know to drop their entries."""
        self.last_error: str | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        """First fetch (awaited, never raises), then the background refresher/retrier."""
        self._session = session
        await self.refresh()
        self._maintainer = asyncio.create_task(self._maintain(), name="jwks-maintainer")

    async def close(self) -> None:
        for task in (self._maintainer, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._maintainer = self._inflight = None

    async def refresh(self) -> bool:
        """Fetch now (joining a fetch already in flight); True if the key set was replaced."""
        if self._inflight is None:
            self._last_fetch_started = self._clock()
            self._inflight = asyncio.create_task(self._fetch(), name="jwks-fetch")
        # shield: a client that disconnects must not cancel the fetch other requests are waiting on
        return await asyncio.shield(self._inflight)

    async def refetch_for_unknown_kid(self) -> bool:
        """Refresh unless one is in flight (then join it) or the last one started under ``jwks_min_refetch_s`` ago."""
        if self._inflight is None and self._last_fetch_started is not None:
            if self._clock() - self._last_fetch_started < self._settings.jwks_min_refetch_s:
                log.debug("jwks_refetch_skipped", reason="rate_limited")
                return False
        return await self.refresh()

    def status(self) -> dict[str, Any]:
        age = None if self._last_success is None else round(self._clock() - self._last_success, 3)
        return {
            "ready": self.keys is not None,
            "keys": 0 if self.keys is None else self.keys.count,
            "jwks_uri": self._jwks_uri,
            "last_refresh_age_s": age,
            "last_error": self.last_error,
        }

    async def _maintain(self) -> None:
        """Refresh every ``jwks_refresh_s``; while the IdP is failing, retry with capped, jittered backoff."""
        backoff = self._retry_initial_s
        while True:
            healthy = self.keys is not None and self.last_error is None
            delay = self._settings.jwks_refresh_s if healthy else backoff * random.uniform(0.8, 1.2)
            await asyncio.sleep(delay)
            if await self.refresh():
                backoff = self._retry_initial_s
            else:
                backoff = min(backoff * 2, self._retry_max_s)

    async def _fetch(self) -> bool:
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            keys = parse_jwks(await self._get_json(self._jwks_uri, "JWKS"), self._settings.algorithms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background fetch must never die: record, log, retry later
            self.last_error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
            log.warning("jwks_fetch_failed", issuer=self._settings.issuer, error=self.last_error, keys_kept=self.keys is not None)
            return False
        else:
            self.keys, self.generation = keys, self.generation + 1
            self._last_success, self.last_error = self._clock(), None
            log.info("jwks_refreshed", jwks_uri=self._jwks_uri, kids=sorted(keys.by_kid), keys=keys.count)
            return True
        finally:
            self._inflight = None

    async def _discover(self) -> str:
        issuer = self._settings.issuer
        doc = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery")
        if doc.get("issuer") != issuer:
            # OIDC Discovery §4.3: a mismatch means a misconfigured issuer URL (or an impostor); never trust it
            raise ValueError(f"discovery issuer {doc.get('issuer')!r} differs from the configured {issuer!r}")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise ValueError("discovery document has no http(s) jwks_uri")
        if issuer.startswith("https://") and not uri.startswith("https://"):
            raise ValueError("jwks_uri downgrades an https issuer to plain http")
        return uri

    async def _get_json(self, url: str, what: str) -> dict:
        assert self._session is not None, "start() first"
        timeout = aiohttp.ClientTimeout(total=self._settings.http_timeout_s)
        async with self._session.get(url, timeout=timeout, headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise ValueError(f"{what} {url} returned HTTP {resp.status}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ValueError(f"{what} document exceeds {MAX_DOCUMENT_BYTES} bytes")
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise ValueError(f"{what} document is not a JSON object")
        return doc
