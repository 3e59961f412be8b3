"""In-memory approval store: one process, the embedded default (`gateway dev`, single replica).

Every primitive runs without awaiting in between, so a load and the compare-and-set that follows it cannot
interleave with another writer on the same event loop; the version token is simply the record object itself.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway.approvals import machine
from gateway.approvals.model import APPROVED, PENDING, Approval, ApprovalPage
from gateway.approvals.settings import ApprovalSettings
from gateway.approvals.store import BaseApprovalStore, EventHook

_PRUNE_BATCH = 64


class MemoryApprovalStore(BaseApprovalStore):
    def __init__(self, grant_ttl_s: float = 600.0, retention_s: float = 86400.0, *,
                 on_event: EventHook | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(grant_ttl_s, on_event, clock)
        self.retention_s = retention_s
        self._items: dict[str, Approval] = {}
        """By id, in creation order (which pruning relies on)."""
        self._pending_by_fp: dict[str, str] = {}
        """Fingerprint -> the pending approval a retry re-attaches to."""
        self._pending: set[str] = set()
        """Every pending id (a fingerprint may have moved on to a newer approval): what the sweeper looks at."""
        self._grants: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: ApprovalSettings, on_event: EventHook | None = None) -> "MemoryApprovalStore":
        return cls(settings.grant_ttl_s, settings.retention_s, on_event=on_event)

    async def _load(self, approval_id: str) -> tuple[Approval, Any] | None:
        approval = self._items.get(approval_id)
        return (approval, approval) if approval is not None else None

    async def _cas(self, token: Any, old: Approval, new: Approval) -> bool:
        if self._items.get(new.id) is not token:
            return False
        self._items[new.id] = new
        if new.state != PENDING:
            self._pending.discard(new.id)
            if self._pending_by_fp.get(new.fingerprint) == new.id:
                del self._pending_by_fp[new.fingerprint]
        if new.state == APPROVED:
            self._grants[new.fingerprint] = new.id
        self.waiters.wake(new.id)
        return True

    async def _insert_or_attach(self, candidate: Approval, now: float) -> tuple[Approval, bool]:
        existing = self._items.get(self._pending_by_fp.get(candidate.fingerprint, ""))
        if existing is not None and existing.state == PENDING and not machine.is_due(existing, now):
            return existing, False
        self._prune(now)
        self._items[candidate.id] = candidate
        self._pending_by_fp[candidate.fingerprint] = candidate.id
        self._pending.add(candidate.id)
        return candidate, True

    async def _grant_id(self, fingerprint: str) -> str | None:
        return self._grants.get(fingerprint)

    async def _due_ids(self, now: float) -> list[str]:
        return [i for i in self._pending if machine.is_due(self._items[i], now)]

    async def list(self, state: str | None = None, limit: int = 50, cursor: str | None = None) -> ApprovalPage:
        """Cursors are scores (expiry for the pending inbox, creation time otherwise), as in the Redis store."""
        now = self.clock()
        for approval_id in await self._due_ids(now):  # show them as what they are
            await self.get(approval_id, now)
        after = _score(cursor)
        if state == PENDING:  # oldest first: an inbox
            items = sorted((a for a in self._items.values() if a.state == PENDING), key=lambda a: a.expires_at)
            items = [a for a in items if after is None or a.expires_at > after]
            score = lambda a: a.expires_at  # noqa: E731
        else:
            items = sorted((a for a in self._items.values() if state is None or a.state == state),
                           key=lambda a: a.created_at, reverse=True)
            items = [a for a in items if after is None or a.created_at < after]
            score = lambda a: a.created_at  # noqa: E731
        page = items[:max(1, limit)]
        return ApprovalPage(page, repr(score(page[-1])) if len(items) > len(page) else None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self.waiters.wake_all()

    def _prune(self, now: float) -> None:
        """Forget ended approvals past their retention (and grant window), oldest first, a few at a time."""
        for approval_id in list(self._items)[:_PRUNE_BATCH]:
            a = self._items[approval_id]
            ended = a.decided_at if a.state != PENDING else None
            if ended is None:
                break
            keep_until = max(ended + self.retention_s, a.grant_expires_at or 0.0)
            if keep_until > now:
                break
            del self._items[approval_id]
            if self._grants.get(a.fingerprint) == approval_id:
                del self._grants[a.fingerprint]

    def __len__(self) -> int:
        return len(self._items)


def _score(cursor: str | None) -> float | None:
    try:
        return float(cursor) if cursor else None
    except ValueError:
        return None
