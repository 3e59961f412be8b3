"""The in-process copy of every active revocation, indexed so the per-request check is a few dict lookups.

Both stores keep one. The memory store's mirror *is* the store; the Redis store's mirror follows Redis (a full
load at start and after every reconnect, pub/sub changes in between). Listeners hear of each revocation once per
process, when it first enters the mirror, whichever way it came in (local add, pub/sub, or a reload).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog

from gateway.principal import Principal
from gateway.revocation.model import Key, Revocation, principal_keys

log = structlog.get_logger("gateway.revocation")

Listener = Callable[[Revocation], None]
"""Called (synchronously, in the event loop) with each revocation new to this process."""


class RevocationMirror:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_id: dict[str, Revocation] = {}
        self._by_key: dict[Key, dict[str, Revocation]] = {}
        self._listeners: list[Listener] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def match(self, principal: Principal) -> Revocation | None:
        """The first active revocation that covers `principal`, else None. At most three dict lookups."""
        now = self._clock()
        for key in principal_keys(principal):
            bucket = self._by_key.get(key)
            if bucket:
                for rev in bucket.values():
                    if rev.expires_at > now:  # an expired entry waits for prune(); it just stops matching
                        return rev
        return None

    def put(self, rev: Revocation) -> bool:
        """Add `rev` unless known or already expired; True (and listeners told) when it is new here."""
        if rev.id in self._by_id or not rev.active(self._clock()):
            return False
        self._by_id[rev.id] = rev
        self._by_key.setdefault(rev.key, {})[rev.id] = rev
        self._notify(rev)
        return True

    def remove(self, revocation_id: str) -> Revocation | None:
        rev = self._by_id.pop(revocation_id, None)
        if rev is not None:
            bucket = self._by_key.get(rev.key)
            if bucket is not None:
                bucket.pop(rev.id, None)
                if not bucket:
                    del self._by_key[rev.key]
        return rev

    def replace(self, revocations: Iterable[Revocation]) -> None:
        """Make the mirror equal to `revocations` (a full load): drop what is gone, add (and announce) what is new."""
        incoming = {rev.id: rev for rev in revocations}
        for gone in [rid for rid in self._by_id if rid not in incoming]:
            self.remove(gone)
        for rev in incoming.values():
            self.put(rev)

    def prune(self) -> int:
        """Forget expired entries (they already stopped matching); returns how many."""
        now = self._clock()
        expired = [rid for rid, rev in self._by_id.items() if rev.expires_at <= now]
        for rid in expired:
            self.remove(rid)
        return len(expired)

    def active(self) -> list[Revocation]:
        """Active revocations, oldest first."""
        now = self._clock()
        return sorted((r for r in self._by_id.values() if r.expires_at > now), key=lambda r: (r.created_at, r.id))

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Hear of every revocation new to this process; returns the function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return unsubscribe

    def _notify(self, rev: Revocation) -> None:
        for listener in list(self._listeners):
            try:
                listener(rev)
            except Exception:  # one broken listener must not keep the others (or the store) from the news
                log.exception("revocation_listener_failed", revocation_id=rev.id)
