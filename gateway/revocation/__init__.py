"""Revocations (the kill switch): shut off a subject, an OAuth client or one token on every replica at once.

- `model`: the Revocation record; token ids are kept only as the hash the Principal carries.
- `store` / `redis_store`: where revocations live; each process checks requests against a local mirror.
- `live`: in-flight exchanges by principal, so a revocation also ends streams already running.
- the request-time check is `gateway.filters.revocation.RevocationFilter`.
"""
from __future__ import annotations

from gateway.revocation.errors import RevocationStoreUnavailable, revocations_stale, stream_revoked, token_revoked
from gateway.revocation.live import LiveExchanges, Terminate
from gateway.revocation.mirror import Listener
from gateway.revocation.model import KINDS, InvalidRevocation, Kind, Revocation, jti_hash, principal_keys
from gateway.revocation.settings import RevocationSettings
from gateway.revocation.store import (
    EVENT_CREATED,
    EVENT_DELETED,
    EventHook,
    MemoryRevocationStore,
    RevocationStore,
)


def build_store(settings: RevocationSettings, *, redis_url: str | None = None,
                on_event: EventHook | None = None) -> RevocationStore:
    """The configured store. `redis_url` (e.g. a URL shared with approvals) is used when settings name none."""
    if settings.backend == "memory":
        return MemoryRevocationStore(settings, on_event=on_event)
    url = settings.redis_url or redis_url
    if not url:
        raise ValueError("revocations.backend is redis but no redis_url is configured")
    from gateway.revocation.redis_store import RedisRevocationStore

    return RedisRevocationStore(url, settings, on_event=on_event)


def __getattr__(name: str):
    # the Redis client is imported only when a Redis store is used (it costs start-up time otherwise)
    if name == "RedisRevocationStore":
        from gateway.revocation.redis_store import RedisRevocationStore

        return RedisRevocationStore
    raise AttributeError(name)


__all__ = [
    "EVENT_CREATED", "EVENT_DELETED", "KINDS", "EventHook", "InvalidRevocation", "Kind", "Listener",
    "LiveExchanges", "MemoryRevocationStore", "RedisRevocationStore", "Revocation", "RevocationSettings",
    "RevocationStore", "RevocationStoreUnavailable", "Terminate", "build_store", "jti_hash", "principal_keys",
    "revocations_stale", "stream_revoked", "token_revoked",
]
