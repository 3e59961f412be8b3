"""A small LRU of recently verified tokens.

Why: clients (agents, SDKs) send the same access token on every call, often many per second; a signature check
plus claim validation costs tens of microseconds of CPU on the event loop, a hit costs one SHA-256. Safety: entries
live at most 60 s and never past the token's own `exp` (or its `max_token_age_s`), the whole cache is dropped
whenever the key set is refetched (so a key removed from the JWKS stops verifying right after the refresh), and
revocation is a separate filter checked on every request, so a cached principal cannot outlive a revocation.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

from gateway.principal import Principal

MAX_ENTRIES = 10_000
MAX_TTL_S = 60.0


def token_key(token: str) -> bytes:
    """The cache key: a digest, so the cache never holds bearer tokens themselves."""
    return hashlib.sha256(token.encode()).digest()


class VerifiedTokenCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self.generation = 0
        """Key-set generation the entries were verified under."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float, generation: int) -> Principal | None:
        if generation != self.generation:
            self._entries.clear()
            self.generation = generation
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, expires_at = entry
        if now >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return principal

    def put(self, key: bytes, principal: Principal, expires_at: float, now: float, generation: int) -> None:
        if generation != self.generation:
            return  # verified under a key set that has since been replaced: do not resurrect it
        self._entries[key] = (principal, min(expires_at, now + MAX_TTL_S))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
