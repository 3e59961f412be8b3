"""Replay a session from the audit log: its masked responses with their original chunking and timing.

`iter_records(store, session_id)` yields the session's records in session order, streaming (one index page and
one record at a time, the next record fetched while the current one is replayed), so output starts after one
list call and one record read whatever the session's size. `render(...)` turns them into output chunks:

- ``sse``  — each masked event's exact bytes (`MaskedEvent.data`), delayed by its `t_ms` / `speed` relative to the
  start of its response (`speed=0`: no delay). Responses follow each other without the gaps between requests.
- ``json`` — one JSON line per record (``{"type": "record", ...}``: every field but the events, plus `events`:
  their count), then one per event (``{"type": "event", "session_seq", "record_id", "i", "t_ms", "data"}``).
- ``text`` — per record a header line and the masked texts joined (the dialect codec extracts content text from
  the events; a body in no known dialect, or one the codec finds no text in, is shown as sent).

Every record's hash is recomputed; a record that fails is reported through `on_problem` (replay goes on).
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from gateway.audit import layout
from gateway.audit.canonical import decode, encode
from gateway.audit.record import Record
from gateway.audit.store import ObjectStore, iter_keys

FORMATS = ("sse", "json", "text")


class SessionNotFound(LookupError):
    pass


async def iter_records(store: ObjectStore, session_id: str, *, read_ahead: int = 8,
                       on_problem: Callable[[str], None] | None = None) -> AsyncIterator[Record]:
    """The session's records in session order, up to `read_ahead` record reads in flight (the first record is
    yielded as soon as it is read, so output starts after one list call and one read)."""
    async def load(key: str) -> tuple[str, bytes | None]:
        parsed = layout.parse_session_index_key(key)
        if parsed is None:
            return key, None
        return key, await store.get(layout.record_key(parsed[2], parsed[3]))

    window: deque[asyncio.Task[tuple[str, bytes | None]]] = deque()
    try:
        async for key in iter_keys(store, layout.session_prefix(session_id), page=256):
            window.append(asyncio.ensure_future(load(key)))
            if len(window) > max(0, read_ahead) or window[0].done():
                rec = _parse(*(await window.popleft()), on_problem)
                if rec is not None:
                    yield rec
        while window:
            rec = _parse(*(await window.popleft()), on_problem)
            if rec is not None:
                yield rec
    finally:
        for task in window:
            task.cancel()


def _parse(index_key: str, raw: bytes | None, on_problem: Callable[[str], None] | None) -> Record | None:
    def problem(msg: str) -> None:
        if on_problem is not None:
            on_problem(msg)

    if raw is None:
        problem(f"missing record for {index_key}")
        return None
    try:
        obj = decode(raw)
        rec = Record.model_validate(obj)
    except Exception as e:  # noqa: BLE001 - any unreadable record is reported, replay goes on
        problem(f"unreadable record for {index_key}: {str(e).splitlines()[0][:200]}")
        return None
    actual = hashlib.sha256(encode({k: v for k, v in obj.items() if k != "hash"})).hexdigest()
    if actual != rec.hash or encode(obj) != raw:
        problem(f"record {rec.stream_id}/{rec.stream_seq} (session seq {rec.session_seq}) fails its hash check")
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
