"""Replay a session from the audit log: its masked responses with their original chunking and timing.

`iter_records(store, session_id)` yields the session's records in session order, streaming: it walks the session's
index pointers as they are listed (`sessions/<session>/`, one page at a time), reads a few pointers and the segments
they name ahead (`read_ahead`), and yields a record as soon as no pointer still unread can hold an earlier one, so
output starts after one list call and a few reads whatever the session's size. Each segment is fetched once
(`segment.SegmentCache`) and dropped once the session's records in it have been yielded, so memory holds the
segments of the pointers in flight, not the session. A gateway-assigned session's first segment has no pointer:
its catalog entry stands for one (`segment.catalog_pointers`), read first.

Why a merge: a pointer lists the session's records in one segment, and two writer streams can interleave one
session (seqs 1, 3, 5 in a segment of stream A, 2, 4 in one of stream B). Pointers list in order of their first
`session_seq` (the key says it), so a record is final once its `session_seq` is below the next unread pointer's.

`render(...)` turns the records into output chunks:

- ``sse``  — each masked event's exact bytes (`MaskedEvent.data`), delayed by its `t_ms` / `speed` relative to the
  start of its response (`speed=0`: no delay). Responses follow each other without the gaps between requests.
- ``json`` — one JSON line per record (``{"type": "record", ...}``: every field but the events, plus `events`:
  their count), then one per event (``{"type": "event", "session_seq", "record_id", "i", "t_ms", "data"}``).
- ``text`` — per record a header line and the masked texts joined (the dialect codec extracts content text from
  the events; a body in no known dialect, or one the codec finds no text in, is shown as sent).

Every record's hash is recomputed and compared with its pointer's entry. Problems are reported through
`on_problem` and replay goes on: a key under the prefix that is no pointer, a pointer body that is missing or
malformed, a segment that is missing or does not hold the records its key names, a record that is unreadable,
fails its hash check, or differs from its pointer entry (hash, position, session).
"""
from __future__ import annotations

import asyncio
import hashlib
import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.audit import layout
from gateway.audit.canonical import decode, encode
from gateway.audit.record import Record
from gateway.audit.segment import SegmentCache, catalog_pointers, parse_pointer_body
from gateway.audit.store import ObjectStore, iter_keys

FORMATS = ("sse", "json", "text")
LIST_PAGE = 256


class SessionNotFound(LookupError):
    pass


@dataclass
class _Loaded:
    """One pointer, read: its entries and its segment's records (None when unreadable)."""

    key: str
    stream_id: str
    first: int
    last: int
    entries: list[tuple[int, int, str]] | None
    records: list[bytes] | None
    left: int = 0
    """Entries not yielded yet (the segment is dropped from the cache at 0)."""

    @property
    def segment_key(self) -> str:
        return layout.segment_key(self.stream_id, self.first, self.last)


async def _load(store: ObjectStore, cache: SegmentCache, key: str, parsed: tuple[str, int, str, int, int]) -> _Loaded:
    _, _, stream_id, first, last = parsed
    entries = parse_pointer_body(await store.get(key))
    records = await cache.segment(stream_id, first, last) if entries else None
    return _Loaded(key, stream_id, first, last, entries, records)


async def iter_records(store: ObjectStore, session_id: str, *, read_ahead: int = 8,
                       on_problem: Callable[[str], None] | None = None) -> AsyncIterator[Record]:
    """The session's records in session order (see the module docstring), with up to `read_ahead` + 1 pointers
    (and their segments) being read at once."""
    def problem(msg: str) -> None:
        if on_problem is not None:
            on_problem(msg)

    cache = SegmentCache(store)
    window: deque[tuple[int, asyncio.Task[_Loaded]]] = deque()  # (first session_seq from the key, read)
    ready: list[tuple[int, int, int, _Loaded]] = []  # heap of (session_seq, order, entry index, pointer)
    order = 0
    last_listed = 0

    def absorb(p: _Loaded) -> None:
        nonlocal order
        if p.entries is None:
            problem(f"index pointer {p.key} is missing or malformed")
            return
        if p.records is None:
            cache.forget(p.segment_key)
            problem(f"missing segment {p.segment_key} (named by {p.key}), or it does not hold the records its key "
                    "names")
            return
        p.left = len(p.entries)
        for i, (session_seq, _, _) in enumerate(p.entries):
            heapq.heappush(ready, (session_seq, order, i, p))
            order += 1

    def take(bound: int | None) -> list[Record]:
        """Records whose session_seq is below `bound` (None: all), in order."""
        out = []
        while ready and (bound is None or ready[0][0] < bound):
            _, _, i, p = heapq.heappop(ready)
            rec = _record(session_id, p, i, problem)
            p.left -= 1
            if p.left == 0:
                cache.forget(p.segment_key)
            if rec is not None:
                out.append(rec)
        return out

    try:
        for first in await catalog_pointers(store, session_id):  # a gateway-assigned session's first segment
            records = await cache.segment(first.stream_id, first.first, first.last)
            absorb(_Loaded(first.key, first.stream_id, first.first, first.last, first.entries, records))
        async for key in iter_keys(store, layout.session_prefix(session_id), page=LIST_PAGE):
            parsed = layout.parse_session_index_key(key)
            if parsed is None or parsed[0] != session_id:
                problem(f"unexpected object {key} in the session index")
                continue
            last_listed = parsed[1]
            window.append((parsed[1], asyncio.ensure_future(_load(store, cache, key, parsed))))
            while window and (len(window) > max(0, read_ahead) or window[0][1].done()):
                absorb(await window.popleft()[1])
                for rec in take(window[0][0] if window else last_listed):
                    yield rec
        while window:
            absorb(await window.popleft()[1])
            for rec in take(window[0][0] if window else None):
                yield rec
        for rec in take(None):
            yield rec
    finally:
        for _, task in window:
            task.cancel()


def _record(session_id: str, p: _Loaded, i: int, problem: Callable[[str], None]) -> Record | None:
    """Entry `i` of pointer `p` as a Record (None, reported, when it cannot be shown as this session's record)."""
    assert p.entries is not None and p.records is not None
    session_seq, stream_seq, entry_hash = p.entries[i]
    where = f"{p.segment_key}#{stream_seq} (named by {p.key})"
    if not 0 <= stream_seq - p.first < len(p.records):
        problem(f"index pointer {p.key} names stream seq {stream_seq}, outside its segment")
        return None
    raw = p.records[stream_seq - p.first]
    try:
        obj = decode(raw)
        rec = Record.model_validate(obj)
    except Exception as e:  # noqa: BLE001 - any unreadable record is reported, replay goes on
        problem(f"unreadable record {where}: {str(e).splitlines()[0][:200]}")
        return None
    if rec.session_id != session_id:
        problem(f"record {rec.stream_id}/{rec.stream_seq} at {where} belongs to another session")
        return None
    actual = hashlib.sha256(encode({k: v for k, v in obj.items() if k != "hash"})).hexdigest()
    if actual != rec.hash or encode(obj) != raw:
        problem(f"record {rec.stream_id}/{rec.stream_seq} (session seq {rec.session_seq}) fails its hash check")
    if (rec.hash, rec.session_seq, rec.stream_id, rec.stream_seq) != (entry_hash, session_seq, p.stream_id,
                                                                         stream_seq):
        problem(f"record {rec.stream_id}/{rec.stream_seq} (session seq {rec.session_seq}) does not match its "
                f"index pointer entry in {p.key}")
    return rec


def record_text(rec: Record) -> str:
    """The masked texts of a record's response joined (content/text channels), or the raw event data."""
    raw = [e["data"] for e in rec.masked_response]
    try:
        from gateway.dialects import codec_for
        from gateway.dialects.base import CONTENT, TEXT

        codec = codec_for(rec.route or "", rec.response_content_type or "")
        parts: list[str] = []
        deltas = 0
        for i, data in enumerate(raw):
            for ev in codec.decode(data.encode("utf-8"), i == len(raw) - 1):
                deltas += len(ev.deltas)
                parts.extend(d.text for d in ev.deltas if d.channel in (CONTENT, TEXT))
        # a body the dialect finds no text in at all (an error body, an unexpected shape): show it as sent
        return "".join(parts) if deltas else "".join(raw)
    except Exception:  # noqa: BLE001 - a codec that cannot read it: show the bytes as they were sent
        return "".join(raw)


def _header(rec: Record) -> str:
    bits = [f"#{rec.session_seq}", rec.time, rec.kind]
    bits += [x for x in (rec.method, rec.route) if x]
    if rec.response_status is not None:
        bits.append(str(rec.response_status))
    if rec.error:
        bits.append(f"error={rec.error}")
    return "--- " + " ".join(bits) + " ---\n"


async def render(store: ObjectStore, session_id: str, *, fmt: str = "sse", speed: float = 1.0,
                 on_problem: Callable[[str], None] | None = None,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> AsyncIterator[bytes]:
    """Output chunks of the replay (sse chunks are paced by `speed`; write and flush each as it comes).
    Raises `SessionNotFound` before yielding anything if the session has no records."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown replay format {fmt!r} (use {', '.join(FORMATS)})")
    if speed < 0:
        raise ValueError("speed must be >= 0")
    found = False
    async for rec in iter_records(store, session_id, on_problem=on_problem):
        found = True
        if fmt == "sse":
            start = time.monotonic()
            for ev in rec.masked_response:
                if speed > 0 and ev["t_ms"] > 0:
                    delay = start + ev["t_ms"] / 1000.0 / speed - time.monotonic()
                    if delay > 0:
                        await sleep(delay)
                yield ev["data"].encode("utf-8")
        elif fmt == "json":
            head = rec.model_dump(mode="json", exclude={"masked_response"})
            head = {"type": "record", **head, "events": len(rec.masked_response)}
            yield orjson.dumps(head, option=orjson.OPT_SORT_KEYS) + b"\n"
            for i, ev in enumerate(rec.masked_response):
                yield orjson.dumps({"type": "event", "session_seq": rec.session_seq, "record_id": rec.record_id,
                                    "i": i, "t_ms": ev["t_ms"], "data": ev["data"]}) + b"\n"
        else:
            text = record_text(rec)
            yield (_header(rec) + text + ("" if text.endswith("\n") else "\n")).encode("utf-8")
    if not found:
        raise SessionNotFound(session_id)
