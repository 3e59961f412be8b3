"""The revocation store interface, its event hook, and the single-process (memory) store.

Writes (`add`, `delete`) and `list` are async because the shared store talks to Redis. `is_revoked` is sync on
purpose: it runs on every request and must only consult the local mirror, never the network.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from gateway.principal import Principal
from gateway.revocation.mirror import Listener, RevocationMirror
from gateway.revocation.model import InvalidRevocation, Revocation, is_revocation_id, new_revocation
from gateway.revocation.settings import RevocationSettings

log = structlog.get_logger("gateway.revocation")

EVENT_CREATED = "revocation.created"
EVENT_DELETED = "revocation.deleted"
EventHook = Callable[[str, Revocation], Awaitable[None]]
"""``on_event(kind, revocation)`` for audit and webhooks: awaited once, on the replica that made the change."""


class RevocationStore(Protocol):
    on_event: EventHook | None

    @property
    def fresh(self) -> bool:
        """False when the local mirror may be missing revocations (then requests must fail closed)."""
        ...

    async def start(self) -> bool:
        """Load and begin following changes; returns `fresh`. Never raises because the backend is down."""
        ...

    async def close(self) -> None: ...

    async def add(self, kind: str, value: str, *, reason: str, created_by: str,
                  ttl_s: float | None = None) -> Revocation:
        """Create a revocation (a `jti` value is the raw token id; only its hash is kept). Raises
        InvalidRevocation (bad input) or RevocationStoreUnavailable."""
        ...

    async def list(self) -> list[Revocation]:
        """Active revocations, oldest first."""
        ...

    async def delete(self, revocation_id: str) -> Revocation | None:
        """Remove one; None when there is no such (active) revocation."""
        ...

    def is_revoked(self, principal: Principal) -> Revocation | None:
        """The active revocation covering `principal`, from the local mirror (no I/O)."""
        ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Hear of every revocation new to this process (local or from another replica)."""
        ...


def resolve_ttl(ttl_s: float | None, settings: RevocationSettings) -> float:
    ttl = settings.default_ttl_s if ttl_s is None else ttl_s
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= settings.max_ttl_s:
        raise InvalidRevocation(f"ttl_s must be a number of seconds in (0, {settings.max_ttl_s:g}]")
    return float(ttl)


async def fire(hook: EventHook | None, kind: str, rev: Revocation) -> None:
    """Run the event hook. The change is already in effect, so a failing hook is logged, not raised: failing the
    admin's call afterwards would invite a retry that creates a second revocation."""
    if hook is None:
        return
    try:
        await hook(kind, rev)
    except Exception:
        log.exception("revocation_event_hook_failed", event_kind=kind, revocation_id=rev.id)


class MemoryRevocationStore:
    """Revocations of one process (the embedded default). Always fresh: there is nothing to lose contact with."""

    def __init__(self, settings: RevocationSettings | None = None, *, on_event: EventHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or RevocationSettings()
        self.on_event = on_event
        self._clock = clock
        self._mirror = RevocationMirror(clock)

    @property
    def fresh(self) -> bool:
        return True

    async def start(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def add(self, kind: str, value: str, *, reason: str, created_by: str,
                  ttl_s: float | None = None) -> Revocation:
        rev = new_revocation(kind, value, reason=reason, created_by=created_by,
                             ttl_s=resolve_ttl(ttl_s, self.settings), now=self._clock())
        self._mirror.prune()
        self._mirror.put(rev)
        await fire(self.on_event, EVENT_CREATED, rev)
        return rev

    async def list(self) -> list[Revocation]:
        self._mirror.prune()
        return self._mirror.active()

    async def delete(self, revocation_id: str) -> Revocation | None:
        if not is_revocation_id(revocation_id):
            return None
        rev = self._mirror.remove(revocation_id)
        if rev is None or not rev.active(self._clock()):
            return None
        await fire(self.on_event, EVENT_DELETED, rev)
        return rev

    def is_revoked(self, principal: Principal) -> Revocation | None:
        return self._mirror.match(principal)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._mirror.subscribe(listener)
