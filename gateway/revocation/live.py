"""In-flight exchanges by principal, so a new revocation can end the streams it covers, not only new requests.

The proxy registers each exchange once its principal is known (``with live.track(principal, terminate):``) and
``terminate(err)`` must end that exchange with `err` (an SSE `stream_terminated` event mid-stream). Entries are
indexed by every key the principal can be revoked under, so a revocation reaches exactly its matches with one dict
lookup, however many other exchanges are live.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from gateway.errors import GatewayError
from gateway.principal import Principal
from gateway.revocation.errors import stream_revoked
from gateway.revocation.model import Key, Revocation, principal_keys

log = structlog.get_logger("gateway.revocation")

Terminate = Callable[[GatewayError], None]
"""Ends one exchange with the given error. Called at most once per registration, in the event loop."""


class RevocationSource(Protocol):
    """What `attach` needs from a store (every RevocationStore has it)."""

    def is_revoked(self, principal: Principal) -> Revocation | None: ...

    def subscribe(self, listener: Callable[[Revocation], None]) -> Callable[[], None]: ...


@dataclass(eq=False)
class _Entry:
    principal: Principal
    terminate: Terminate
    keys: list[Key] = field(default_factory=list)
    done: bool = False


class LiveExchanges:
    def __init__(self, check: Callable[[Principal], Revocation | None] | None = None) -> None:
        self._by_key: dict[Key, set[_Entry]] = {}
        self._count = 0
        self._check = check

    def __len__(self) -> int:
        return self._count

    def attach(self, store: RevocationSource) -> Callable[[], None]:
        """Follow `store`: terminate on each new revocation, and check new registrations against it. Returns the
        function that detaches."""
        self._check = store.is_revoked
        return store.subscribe(self.on_revocation)

    def register(self, principal: Principal, terminate: Terminate) -> Callable[[], None]:
        """Track one exchange; returns its unregister function (idempotent).

        A revocation that landed between the request-time check and this call would never be announced again,
        so the principal is checked here once more and terminated at once if already revoked.
        """
        entry = _Entry(principal, terminate, principal_keys(principal))
        for key in entry.keys:
            self._by_key.setdefault(key, set()).add(entry)
        self._count += 1

        def unregister() -> None:
            if entry.keys:
                self._remove(entry)
        if self._check is not None and self._check(principal) is not None:
            self._terminate(entry)
        return unregister

    @contextmanager
    def track(self, principal: Principal, terminate: Terminate) -> Iterator[None]:
        unregister = self.register(principal, terminate)
        try:
            yield
        finally:
            unregister()

    def on_revocation(self, rev: Revocation) -> int:
        """Terminate every live exchange `rev` covers; returns how many were terminated now."""
        bucket = self._by_key.get(rev.key)
        if not bucket:
            return 0
        ended = 0
        for entry in list(bucket):  # terminate() may unregister synchronously
            if not entry.done:
                self._terminate(entry)
                ended += 1
        if ended:
            log.info("live_exchanges_terminated", revocation_id=rev.id, count=ended)
        return ended

    def _terminate(self, entry: _Entry) -> None:
        entry.done = True
        try:
            entry.terminate(stream_revoked())
        except Exception:  # the other matching exchanges must still be ended
            log.exception("live_exchange_terminate_failed")

    def _remove(self, entry: _Entry) -> None:
        for key in entry.keys:
            bucket = self._by_key.get(key)
            if bucket is not None:
                bucket.discard(entry)
                if not bucket:
                    del self._by_key[key]
        entry.keys = []
        self._count -= 1
