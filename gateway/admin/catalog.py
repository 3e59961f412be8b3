"""Finding sessions: a walk over the `catalog/` keys (sorted by start time), filtered by subject from their bodies.

A session is listed when its first record's time is in ``[since, until)``. One call examines at most
`scan_limit` catalog entries, so a subject that matches rarely cannot make one request read the whole catalog:
the answer then holds fewer than `limit` sessions and a `next` cursor to go on from. `next` is None only when the
window has been walked to its end.

The catalog is an index, not evidence (no chain covers it; the verifier compares it with the first records): an
entry whose body does not match its key is still listed, from its key, with `subject` None and a `problem`.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gateway.audit import layout
from gateway.audit.canonical import decode
from gateway.audit.store import ObjectStore

READS_IN_FLIGHT = 16


@dataclass
class SessionPage:
    sessions: list[dict[str, Any]]
    """`{"id", "subject", "started_at", "first_record_hash"}` (plus `problem` for an unreadable entry)."""
    last_key: str | None
    """The catalog key to continue after; None when there is nothing more in the window."""


def rfc3339(compact: str) -> str:
    """`20250101T000102003Z` → `2025-01-01T00:01:02.003Z` (inverse of `layout.catalog_time`)."""
    c = compact
    return f"{c[0:4]}-{c[4:6]}-{c[6:8]}T{c[9:11]}:{c[11:13]}:{c[13:15]}.{c[15:18]}Z"


def entry(key: str, body: bytes | None) -> dict[str, Any] | None:
    """The list item for one catalog object (None for a key that is not a catalog entry)."""
    parsed = layout.parse_catalog_key(key)
    if parsed is None:
        return None
    compact, session_id = parsed
    item: dict[str, Any] = {"id": session_id, "subject": None, "started_at": rfc3339(compact),
                            "first_record_hash": None}
    try:
        obj = decode(body) if body is not None else None
        ok = (isinstance(obj, dict) and obj.get("session_id") == session_id
              and isinstance(obj.get("time"), str) and layout.catalog_time(obj["time"]) == compact
              and isinstance(obj.get("subject"), (str, type(None))))
    except ValueError:
        obj, ok = None, False
    if ok and isinstance(obj, dict):
        item.update(subject=obj["subject"], started_at=obj["time"], first_record_hash=obj.get("hash"))
    else:
        item["problem"] = "catalog entry missing or not matching its key (run GET /admin/audit/verify)"
    return item


async def _bodies(store: ObjectStore, keys: list[str]) -> list[bytes | None]:
    gate = asyncio.Semaphore(READS_IN_FLIGHT)

    async def one(key: str) -> bytes | None:
        async with gate:
            return await store.get(key)

    return list(await asyncio.gather(*(one(k) for k in keys)))


async def find_sessions(store: ObjectStore, *, limit: int, since: str | None = None, until: str | None = None,
                        subject: str | None = None, after: str | None = None,
                        scan_limit: int = 5000) -> SessionPage:
    """Sessions started in ``[since, until)`` (compact catalog times), after the catalog key `after`."""
    start = max(k for k in (after, f"{layout.CATALOG}{since}" if since else None, layout.CATALOG) if k)
    end = f"{layout.CATALOG}{until}" if until else None  # a key sorts below this iff its time is before `until`
    # +1: learn whether more follow without another round trip; a subject filter skips entries, so read more at once
    page_size = limit + 1 if subject is None else 500
    found: list[dict[str, Any]] = []
    scanned = 0
    while True:
        keys = await store.list(layout.CATALOG, start_after=start, limit=page_size)
        window = [k for k in keys if end is None or k < end]
        for key, body in zip(window, await _bodies(store, window)):
            if len(found) == limit or scanned == scan_limit:
                return SessionPage(found, start)  # at least `key` follows
            start, scanned = key, scanned + 1
            item = entry(key, body)
            if item is not None and (subject is None or item["subject"] == subject):
                found.append(item)
        if len(window) < len(keys) or len(keys) < page_size:
            return SessionPage(found, None)
