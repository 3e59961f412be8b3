"""Finding sessions: a merge over the `catalog/` objects (one per segment that starts sessions), oldest first.

A session is listed when its first record's time is in ``[since, until)``. A catalog object is keyed by its
earliest entry's time and holds entries at most `layout.CATALOG_SPAN_MS` later, so the window's sessions are all in
the objects listed from `catalog/<since − span>` to `catalog/<until>`, and objects from several writer streams
overlap in time. They are read in key order and merged: once every object whose key time is at most T has been
read, entries earlier than the next unread key's time are final, and come out ordered by (time, session_id).

One call examines at most `scan_limit` entries of the window, so a subject that matches rarely cannot make one
request read the whole catalog: the answer then holds fewer than `limit` sessions and a `next` position to go on
from, the last (time, session_id) examined. `next` is None only when the window has been walked to its end.

The catalog is an index, not evidence (the verifier recomputes it from the segments). A catalog object that is
missing, not a list of entries, or not matching its key (an entry before its time or beyond its span, entries out
of order) is listed as ONE item, whatever the subject filter, at its key's time: ``{"id": None, "subject": None,
"started_at", "first_record_hash": None, "catalog_key", "problem"}``; the sessions it should index are unknown, so
the investigator is told where the hole is instead of getting a list that looks complete. Its position (for the
cursor) is (key time, catalog key), or (since, catalog key) for an object keyed before the window (it may hold
sessions of the window): no session id contains ``/``, so it never collides with a session's.
"""
from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from gateway.audit import layout
from gateway.audit.canonical import decode
from gateway.audit.store import ObjectStore

READS_IN_FLIGHT = 16
LIST_PAGE = 100

Position = tuple[str, str]
"""(compact time, session id) of a listed item: the order of the list, and what a cursor holds."""


@dataclass
class SessionPage:
    sessions: list[dict[str, Any]]
    """`{"id", "subject", "started_at", "first_record_hash"}` (problem items: see the module docstring)."""
    last: Position | None
    """The position to continue after; None when there is nothing more in the window."""


def rfc3339(compact: str) -> str:
    """`20250101T000102003Z` → `2025-01-01T00:01:02.003Z` (inverse of `layout.catalog_time`)."""
    c = compact
    return f"{c[0:4]}-{c[4:6]}-{c[6:8]}T{c[9:11]}:{c[11:13]}:{c[13:15]}.{c[15:18]}Z"


def earlier(compact: str, ms: int) -> str | None:
    """The compact time `ms` milliseconds before `compact`; None before year 1 (list from the catalog's start)."""
    return layout.shift(compact, -ms)


def entries_of(key: str, body: bytes | None) -> list[tuple[Position, dict[str, Any]]] | None:
    """The list items of one catalog object with their positions, or None if it is unreadable or does not match
    its key (see the module docstring)."""
    parsed = layout.parse_catalog_key(key)
    if parsed is None or body is None:
        return None
    compact = parsed[0]
    try:
        obj = decode(body)
        if not isinstance(obj, list) or not obj:
            return None
        out = []
        for e in obj:
            if not (isinstance(e, dict) and isinstance(e.get("session_id"), str) and isinstance(e.get("time"), str)
                    and isinstance(e.get("subject"), (str, type(None))) and isinstance(e.get("hash"), str)):
                return None
            out.append(((layout.catalog_time(e["time"]), e["session_id"]),
                        {"id": e["session_id"], "subject": e["subject"], "started_at": e["time"],
                         "first_record_hash": e["hash"]}))
    except ValueError:  # not JSON, or a time that is no RFC 3339 millisecond time
        return None
    positions = [p for p, _ in out]
    if positions != sorted(positions) or positions[0][0] != compact \
            or positions[-1][0] > (layout.shift(compact, layout.CATALOG_SPAN_MS) or compact):
        return None
    return out


def problem_item(key: str, compact: str, since: str | None) -> tuple[Position, dict[str, Any]]:
    """The item standing for an unreadable catalog object. Its position is at the window's start when its key
    time is earlier (it may hold sessions of the window), so the list stays ordered."""
    item = {"id": None, "subject": None, "started_at": rfc3339(compact), "first_record_hash": None, "catalog_key": key,
            "problem": "catalog object unreadable or not matching its key: the sessions it indexes are not listed "
                       "(run GET /admin/audit/verify)"}
    return (max(compact, since or compact), key), item


async def _objects(store: ObjectStore, start: str | None, end: str | None) -> AsyncIterator[tuple[str, bytes | None]]:
    """(key, body) of the catalog objects after `start` and below `end`, in key order, read a batch at a time."""
    after = start
    while True:
        keys = await store.list(layout.CATALOG, start_after=after, limit=LIST_PAGE)
        window = [k for k in keys if end is None or k < end]
        for i in range(0, len(window), READS_IN_FLIGHT):
            batch = window[i:i + READS_IN_FLIGHT]
            for item in zip(batch, await asyncio.gather(*(store.get(k) for k in batch))):
                yield item
        if len(window) < len(keys) or len(keys) < LIST_PAGE:
            return
        after = keys[-1]


async def _merged(store: ObjectStore, since: str | None, until: str | None,
                  after: Position | None) -> AsyncIterator[tuple[Position, dict[str, Any]]]:
    """Every item of the window positioned after `after`, in order."""
    lower = max((t for t in (since, after[0] if after else None) if t), default=None)
    start = earlier(lower, layout.CATALOG_SPAN_MS) if lower else None
    pending: list[tuple[Position, int, dict[str, Any]]] = []  # heap; the int keeps equal positions stable
    n = 0

    def wanted(pos: Position) -> bool:
        return (since is None or pos[0] >= since) and (until is None or pos[0] < until) \
            and (after is None or pos > after)

    async with aclosing(_objects(store, layout.catalog_start(start) if start else None,
                                 layout.catalog_start(until) if until else None)) as objects:
        async for key, body in objects:
            parsed = layout.parse_catalog_key(key)
            if parsed is None:
                continue  # a stray key indexes nothing (the verifier names it)
            key_time = parsed[0]
            while pending and pending[0][0][0] < key_time:  # no unread object holds anything earlier
                pos, _, item = heapq.heappop(pending)
                yield pos, item
            items = entries_of(key, body)
            for pos, item in items if items is not None else [problem_item(key, key_time, since)]:
                if wanted(pos):
                    heapq.heappush(pending, (pos, n, item))
                    n += 1
    while pending:
        pos, _, item = heapq.heappop(pending)
        yield pos, item


async def find_sessions(store: ObjectStore, *, limit: int, since: str | None = None, until: str | None = None,
                        subject: str | None = None, after: Position | None = None,
                        scan_limit: int = 5000) -> SessionPage:
    """Sessions started in ``[since, until)`` (compact catalog times), positioned after `after`."""
    found: list[dict[str, Any]] = []
    scanned = 0
    last: Position | None = None
    async with aclosing(_merged(store, since, until, after)) as items:
        async for pos, item in items:
            if len(found) == limit or scanned == scan_limit:
                return SessionPage(found, last)  # at least this item follows
            last, scanned = pos, scanned + 1
            if subject is None or item["subject"] == subject or "problem" in item:
                found.append(item)
    return SessionPage(found, None)
