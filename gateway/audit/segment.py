"""Segments: how records are packed into store objects, and the index and catalog objects derived from them.

One segment = records `first`..`last` of one writer stream (see `layout`). Everything else the uploader writes
for a segment — a session index pointer per session in it (except a gateway-assigned session starting there,
which its catalog entry indexes), a catalog object per second in which sessions started there — is
`index_objects(metas)`: a pure function of the records' bytes, so the uploader, a resumed uploader after a crash
and the verifier all derive the same objects. `SegmentBuilder` decides where a segment must end.

Readers: `session_pointers(store, session_id)` lists and reads a session's pointers, after `catalog_pointers` (the
catalog entry standing for a gateway-assigned session's first segment); `SegmentCache.record(...)` fetches the
record a pointer names (one GET per segment, kept while a reader walks the session).
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.audit import layout
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.store import ObjectStore, iter_keys

__all__ = ["Meta", "Pointer", "SegmentBuilder", "SegmentCache", "index_objects", "meta_of", "pack",
           "segment_objects", "session_pointers", "unpack"]

MAX_SEGMENT_BYTES = 8 << 20
"""A segment is cut before it would exceed this (one record alone may be larger: it then goes alone)."""


@dataclass(frozen=True, slots=True)
class Meta:
    """What packing and indexing need from one record (read from its bytes by `meta_of`)."""

    stream_id: str
    stream_seq: int
    session_id: str
    session_seq: int
    hash: str
    time: str
    subject: str | None
    size: int


def meta_of(raw: bytes) -> Meta:
    """Parse the fields indexing needs; ValueError if `raw` is not a record with them."""
    try:
        obj = orjson.loads(raw)
        principal = obj.get("principal")
        meta = Meta(obj["stream_id"], obj["stream_seq"], obj["session_id"], obj["session_seq"], obj["hash"],
                    obj["time"], principal.get("sub") if isinstance(principal, dict) else None, len(raw))
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a record: {type(exc).__name__}: {exc}") from None
    if not (isinstance(meta.stream_id, str) and isinstance(meta.session_id, str) and isinstance(meta.hash, str)
            and isinstance(meta.time, str) and type(meta.stream_seq) is int and type(meta.session_seq) is int):
        raise ValueError("not a record: field types")
    return meta


def pack(records: Iterable[bytes]) -> bytes:
    """The segment object's body: each record's bytes, then a newline."""
    out = bytearray()
    for raw in records:
        if b"\n" in raw:
            raise ValueError("a record's canonical bytes never contain a newline")
        out += raw
        out += b"\n"
    return bytes(out)


def unpack(body: bytes) -> list[bytes]:
    """The records of a segment body; ValueError if it is not newline-terminated lines."""
    if not body.endswith(b"\n"):
        raise ValueError("segment does not end with a newline")
    return body[:-1].split(b"\n")


class SegmentBuilder:
    """Accumulates records for one segment and says when the next one may not join it: another stream, a
    sequence gap, `MAX_SEGMENT_RECORDS`, `max_records` or `MAX_SEGMENT_BYTES`."""

    def __init__(self, max_records: int = layout.MAX_SEGMENT_RECORDS) -> None:
        self.max_records = min(max_records, layout.MAX_SEGMENT_RECORDS)
        self.metas: list[Meta] = []
        self._bytes = 0

    def fits(self, meta: Meta) -> bool:
        if not self.metas:
            return True
        last = self.metas[-1]
        return (meta.stream_id == last.stream_id and meta.stream_seq == last.stream_seq + 1
                and len(self.metas) < self.max_records and self._bytes + meta.size + 1 <= MAX_SEGMENT_BYTES)

    def add(self, meta: Meta) -> None:
        if not self.fits(meta):
            raise ValueError("record does not fit this segment")
        self.metas.append(meta)
        self._bytes += meta.size + 1


def found_by_catalog(first: Meta) -> bool:
    """True if the session whose first record is `first` is indexed by its catalog entry instead of a pointer
    (a gateway-assigned id whose time is exactly the record's; see `layout`)."""
    t = layout.assigned_session_time(first.session_id)
    if t is None or first.session_seq != 1:
        return False
    try:
        return layout.catalog_time(first.time) == t
    except ValueError:
        return False


def index_objects(metas: list[Meta]) -> list[tuple[str, bytes]]:
    """The session pointers and catalog objects of the segment holding `metas` (see `layout`)."""
    if not metas:
        return []
    sid, first, last = metas[0].stream_id, metas[0].stream_seq, metas[-1].stream_seq
    by_session: dict[str, list[Meta]] = {}
    for m in metas:
        by_session.setdefault(m.session_id, []).append(m)
    objects = []
    in_catalog: dict[str, list[list[Any]]] = {}
    for session_id, ms in by_session.items():
        entries = [[m.session_seq, m.stream_seq, m.hash] for m in ms]
        if found_by_catalog(ms[0]):
            in_catalog[session_id] = entries
        else:
            key = layout.session_index_key(session_id, ms[0].session_seq, sid, first, last)
            objects.append((key, canonical_bytes(entries)))
    groups: dict[str, list[dict[str, Any]]] = {}
    for m in sorted((m for m in metas if m.session_seq == 1), key=lambda m: (m.time, m.session_id)):
        entry: dict[str, Any] = {"session_id": m.session_id, "subject": m.subject, "time": m.time, "hash": m.hash}
        if m.session_id in in_catalog:
            entry["records"] = in_catalog[m.session_id]
        groups.setdefault(layout.catalog_bucket(m.time), []).append(entry)
    for entries in groups.values():
        objects.append((layout.catalog_key(entries[0]["time"], sid, first), canonical_bytes(entries)))
    return objects


def segment_objects(records: list[bytes], metas: list[Meta] | None = None) -> list[tuple[str, bytes]]:
    """Every object that stores `records` (consecutive records of one stream): the segment first, then its
    index objects. The segment must be stored before them (a pointer never names a missing segment)."""
    metas = metas if metas is not None else [meta_of(r) for r in records]
    m0, m1 = metas[0], metas[-1]
    if any(m.stream_id != m0.stream_id or m.stream_seq != m0.stream_seq + i for i, m in enumerate(metas)):
        raise ValueError("a segment holds consecutive records of one stream")
    return [(layout.segment_key(m0.stream_id, m0.stream_seq, m1.stream_seq), pack(records)), *index_objects(metas)]


# -- readers ------------------------------------------------------------------------------------------------------
@dataclass
class Pointer:
    """One session index pointer, read."""

    key: str
    session_id: str
    session_seq: int
    stream_id: str
    first: int
    last: int
    entries: list[tuple[int, int, str]] | None = None
    """(session_seq, stream_seq, hash) per record, None if the body is missing or malformed."""
    body: bytes | None = None
    """For a catalog pointer (`catalog_pointers`): the catalog object's bytes as read (bundles and per-session
    verification use them without reading the object again)."""

    @property
    def segment_key(self) -> str:
        return layout.segment_key(self.stream_id, self.first, self.last)


def _json_list(body: bytes | None) -> list[Any] | None:
    """A stored index or catalog object's body as a JSON list (None if missing or anything else)."""
    if body is None:
        return None
    try:
        obj: Any = decode(body)
    except ValueError:
        return None
    return obj if isinstance(obj, list) else None


def parse_pointer_body(body: bytes | None) -> list[tuple[int, int, str]] | None:
    return _entries(_json_list(body))


def _entries(obj: Any) -> list[tuple[int, int, str]] | None:
    """`[[session_seq, stream_seq, hash], ...]` (a pointer's body, a catalog entry's `records`), checked."""
    if not isinstance(obj, list) or not obj:
        return None
    out = []
    for item in obj:
        if (not isinstance(item, list) or len(item) != 3 or type(item[0]) is not int or type(item[1]) is not int
                or not isinstance(item[2], str)):
            return None
        out.append((item[0], item[1], item[2]))
    return out


async def session_pointers(store: ObjectStore, session_id: str, *, concurrency: int = 16) -> list[Pointer]:
    """The session's index pointers in session order, bodies read (keys that do not parse are skipped), after the
    catalog entry standing for the first segment of a gateway-assigned session (`catalog_pointer`)."""
    pointers = []
    async for key in iter_keys(store, layout.session_prefix(session_id)):
        parsed = layout.parse_session_index_key(key)
        if parsed is not None and parsed[0] == session_id:
            pointers.append(Pointer(key, *parsed))
    gate = asyncio.Semaphore(concurrency)

    async def read(p: Pointer) -> None:
        async with gate:
            p.entries = parse_pointer_body(await store.get(p.key))

    await asyncio.gather(*(read(p) for p in pointers))
    return [*await catalog_pointers(store, session_id), *pointers]  # a gateway-assigned session's first segment


@dataclass
class SegmentCache:
    """Fetches segments for readers that walk a session: each segment is read once, records split out."""

    store: ObjectStore
    _segments: dict[str, asyncio.Future[list[bytes] | None]] = field(default_factory=dict)

    async def records(self, segment_key: str) -> list[bytes] | None:
        """The segment's records (None if it is missing or not newline-separated records)."""
        fut = self._segments.get(segment_key)
        if fut is None:
            fut = self._segments[segment_key] = asyncio.ensure_future(self._load(segment_key))
        return await asyncio.shield(fut)

    async def _load(self, segment_key: str) -> list[bytes] | None:
        body = await self.store.get(segment_key)
        if body is None:
            return None
        try:
            return unpack(body)
        except ValueError:
            return None

    async def segment(self, stream_id: str, first: int, last: int) -> list[bytes] | None:
        """The records of segment `first`..`last` of `stream_id`, None if it is missing or does not hold that
        many (then no position in it can be trusted)."""
        recs = await self.records(layout.segment_key(stream_id, first, last))
        return recs if recs is not None and len(recs) == last - first + 1 else None

    async def record(self, stream_id: str, first: int, last: int, stream_seq: int) -> bytes | None:
        """Record `stream_seq` from segment `first`..`last` of `stream_id` (None if absent or out of range)."""
        recs = await self.segment(stream_id, first, last)
        return recs[stream_seq - first] if recs is not None and first <= stream_seq <= last else None

    def forget(self, segment_key: str) -> None:
        """Drop a segment a reader is done with (long sessions: memory stays bounded)."""
        self._segments.pop(segment_key, None)


def _catalog_records(body: bytes | None, session_id: str, first: int) -> list[list[tuple[int, int, str]]]:
    """The `records` of every entry of `session_id` in a catalog object body whose stream seqs can lie in a segment
    starting at `first` (malformed entries are skipped: the verifier reports them)."""
    found = []
    for entry in _json_list(body) or []:
        if not (isinstance(entry, dict) and entry.get("session_id") == session_id):
            continue
        records = _entries(entry.get("records"))
        if records and all(first <= r[1] < first + layout.MAX_SEGMENT_RECORDS for r in records):
            found.append(records)
    return found


async def catalog_pointers(store: ObjectStore, session_id: str, *, concurrency: int = 8) -> list[Pointer]:
    """The first segment of a gateway-assigned session, found through the catalog (see `layout`), as `Pointer`s
    whose `key` is the catalog object's: normally one; several if writers forked the session (each is evidence).
    Empty for other ids or when no catalog entry indexes the session. Reads every catalog object keyed in the
    id's second up to its time."""
    window = layout.catalog_lookup_window(session_id)
    if window is None:
        return []
    start, end = window
    keys: list[str] = []
    while True:
        page = await store.list(layout.CATALOG, start_after=start, limit=1000)
        keys += [k for k in page if k < end]
        if len(page) < 1000 or page[-1] >= end:
            break
        start = page[-1]
    gate = asyncio.Semaphore(concurrency)

    async def read(key: str) -> bytes | None:
        async with gate:
            return await store.get(key)

    bodies = await asyncio.gather(*(read(k) for k in keys))
    pointers = []
    for key, body in zip(keys, bodies):
        parsed = layout.parse_catalog_key(key)
        if parsed is None:
            continue
        _, stream_id, first = parsed
        for entries in _catalog_records(body, session_id, first):
            found = await store.list(f"{layout.segment_prefix(stream_id)}{first:020d}-", limit=1)
            seg = layout.parse_segment_key(found[0]) if found else None
            last = seg[2] if seg is not None and seg[1] == first else max(e[1] for e in entries)
            pointers.append(Pointer(key, session_id, min(entries)[0], stream_id, first, last, entries, body))
    return sorted(pointers, key=lambda p: (p.session_seq, p.key))
