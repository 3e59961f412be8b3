"""Object keys of the audit log: pure functions, the only place key names are spelled.

Layout (every name below is relative to the store's root, e.g. the `s3://bucket/prefix/`)::

    streams/<stream_id>/segments/<first:020d>-<last:020d>.jsonl
        Records `stream_seq` first..last of one writer stream, in order, each as its canonical JSON bytes (see
        `record.py`, `hash` included) followed by one ``\n`` (canonical JSON never holds a raw newline). The
        uploader ships the spool in such batches, so a PUT carries many records. A writer stream belongs to one
        gateway process, so only one writer ever creates keys here; `stream_seq` starts at 1, and a stream's
        segments neither overlap nor leave gaps. A segment holds at most `MAX_SEGMENT_RECORDS` records.
    streams/<stream_id>/digests/<digest_seq:020d>.json
        One signed digest of the stream (see `digest.py`); `digest_seq` starts at 1.
    sessions/<session>/<session_seq:012d>-<stream_id>-<first:020d>-<last:020d>
        Session index pointer: one per (session, segment) holding records of the session. `session_seq` is that
        of the session's first record in the segment, `first`/`last` name the segment. Body: canonical JSON
        ``[[session_seq, stream_seq, hash], ...]``, the session's records in the segment, in order. Listing the
        prefix `sessions/<session>/` yields the session's pointers in session order (zero padding makes the
        lexicographic order numeric): one prefix list per session.
    catalog/<time:YYYYMMDDTHHMMSSmmmZ>-<stream_id>-<first:020d>
        Session catalog object: one per (segment, UTC second) in which sessions of the segment started (their
        first record, `session_seq` 1, is in the segment). Body: canonical JSON
        ``[{"session_id", "subject", "time", "hash"[, "records"]}, ...]`` (each new session's first record's id,
        principal, time and hash), sorted by (time, session_id). The key's time is the earliest entry's; all
        entries lie in the same second, so within `CATALOG_SPAN_MS` of it, and the sessions that started in
        ``[since, until)`` are all in the objects listed from `catalog/<since − span>` up to `catalog/<until>`.

Sessions whose id the gateway assigned (`assigned_session_id`: ``g<start time>-<32 hex>``, the time taken from the
same clock reading as the request's record `time`) are found through the catalog, so the segment holding such a
session's first record needs no pointer for it: when that record's time equals the time in the id, its catalog
entry carries ``"records": [[session_seq, stream_seq, hash], ...]`` (the session's records in that segment, the
body a pointer would have had) and no pointer is written; later segments get pointers as usual.
`catalog_lookup_window(session_id)` bounds the catalog keys to read: the objects of that second keyed at or before
the time (a catalog object is keyed by its earliest entry). A client may send an id of that form; if its time is
not a real date or not its first record's time, the session simply gets a pointer, so no id can hide a session
from a lookup. For one-request sessions — SDK clients that send no `X-Session-Id` — this takes the pointer PUT out
of every record.

Every index and catalog object is a pure function of the segments (`segment.index_objects`), and the verifier
recomputes them. `<session>` is the session id with every character outside ``[A-Za-z0-9_.-]`` (and a leading
``.``) written as ``=XX`` per UTF-8 byte, so ``alice@x:1`` becomes ``alice=40x=3A1``; the mapping is reversible
(`decode_segment`). Zero padding: 20 digits hold any 64-bit counter; 12 digits hold 10^12 records per session.

Records waiting in the local spool are named `spool_record_name(stream_id, stream_seq)` there; that name never
reaches the store.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

STREAMS = "streams/"
SESSIONS = "sessions/"
CATALOG = "catalog/"

_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_SEGMENT_KEY = re.compile(r"streams/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/segments/(\d{20})-(\d{20})\.jsonl")
_SPOOL_RECORD = re.compile(r"r/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/(\d{20})")
_DIGEST_KEY = re.compile(r"streams/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/digests/(\d{20})\.json")
_INDEX_KEY = re.compile(r"sessions/([^/]+)/(\d{12})-([A-Za-z0-9][A-Za-z0-9_-]{0,63})-(\d{20})-(\d{20})")
_ASSIGNED = re.compile(r"g(\d{8}T\d{9}Z)-[0-9a-f]{32}")
_CATALOG_KEY = re.compile(r"catalog/(\d{8}T\d{9}Z)-([A-Za-z0-9][A-Za-z0-9_-]{0,63})-(\d{20})")
_RFC3339_MS = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z")
_MAX_SEQ = 10**20 - 1
_MAX_SESSION_SEQ = 10**12 - 1
MAX_SEGMENT_RECORDS = 1000
"""Most records one segment may hold (bounds what a reader fetches for one record, and a resuming uploader's
search for the segment that covers a sequence number)."""
CATALOG_SPAN_MS = 999
"""Entries of one catalog object lie within this many milliseconds of its key's time (one UTC second)."""


def check_stream_id(stream_id: str) -> str:
    """Return `stream_id` if it can name a stream (1-64 of letters, digits, `_`, `-`; not leading `_`/`-`)."""
    if not _STREAM_ID.fullmatch(stream_id):
        raise ValueError(f"bad stream id: {stream_id!r}")
    return stream_id


def _seq(n: int, top: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= top:
        raise ValueError(f"sequence number out of range: {n!r}")
    return n


def encode_segment(value: str) -> str:
    """A key segment for an arbitrary non-empty string (session ids are client-chosen)."""
    if _PLAIN.fullmatch(value):
        return value
    if not value:
        raise ValueError("empty key segment")
    out = []
    for i, b in enumerate(value.encode("utf-8")):
        out.append(chr(b) if b in _SAFE and not (i == 0 and b == 0x2E) else f"={b:02X}")
    return "".join(out)


def decode_segment(segment: str) -> str:
    """Inverse of `encode_segment`."""
    if _PLAIN.fullmatch(segment):
        return segment
    out = bytearray()
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "=":
            out.append(int(segment[i + 1:i + 3], 16))
            i += 3
        else:
            out += c.encode("ascii")
            i += 1
    value = out.decode("utf-8")
    if encode_segment(value) != segment:
        raise ValueError(f"not a canonical key segment: {segment!r}")
    return value


# -- streams ------------------------------------------------------------------------------------------------------
def stream_prefix(stream_id: str) -> str:
    return f"{STREAMS}{check_stream_id(stream_id)}/"


def segment_prefix(stream_id: str) -> str:
    return f"{stream_prefix(stream_id)}segments/"


def segment_key(stream_id: str, first: int, last: int) -> str:
    """The segment of `stream_id` holding records `first`..`last` (at most `MAX_SEGMENT_RECORDS`)."""
    _seq(first, _MAX_SEQ)
    if not first <= _seq(last, _MAX_SEQ) < first + MAX_SEGMENT_RECORDS:
        raise ValueError(f"bad segment range: {first}..{last}")
    return f"{segment_prefix(stream_id)}{first:020d}-{last:020d}.jsonl"


def segment_search_start(stream_id: str, seq: int) -> str:
    """List `segment_prefix(stream_id)` after this key to meet first the segment that may hold `seq` (it starts
    at most `MAX_SEGMENT_RECORDS - 1` records earlier)."""
    start = max(0, seq - MAX_SEGMENT_RECORDS)
    return f"{segment_prefix(stream_id)}{start:020d}."


def spool_record_name(stream_id: str, stream_seq: int) -> str:
    """What a record is called in the local spool (an entry per record; the uploader packs them in segments)."""
    return f"r/{check_stream_id(stream_id)}/{_seq(stream_seq, _MAX_SEQ):020d}"


def parse_spool_record_name(name: str) -> tuple[str, int] | None:
    m = _SPOOL_RECORD.fullmatch(name)
    return (m.group(1), int(m.group(2))) if m and int(m.group(2)) >= 1 else None


def digest_prefix(stream_id: str) -> str:
    return f"{stream_prefix(stream_id)}digests/"


def digest_key(stream_id: str, digest_seq: int) -> str:
    return f"{digest_prefix(stream_id)}{_seq(digest_seq, _MAX_SEQ):020d}.json"


def parse_segment_key(key: str) -> tuple[str, int, int] | None:
    """`(stream_id, first, last)` for a segment key, None for any other key (or an impossible range)."""
    m = _SEGMENT_KEY.fullmatch(key)
    if not m:
        return None
    first, last = int(m.group(2)), int(m.group(3))
    return (m.group(1), first, last) if 1 <= first <= last < first + MAX_SEGMENT_RECORDS else None


def parse_digest_key(key: str) -> tuple[str, int] | None:
    """`(stream_id, digest_seq)` for a digest key, None for any other key."""
    m = _DIGEST_KEY.fullmatch(key)
    return (m.group(1), int(m.group(2))) if m and int(m.group(2)) >= 1 else None


# -- sessions -----------------------------------------------------------------------------------------------------
def session_prefix(session_id: str) -> str:
    """List this prefix to get a session's index pointers in session order."""
    return f"{SESSIONS}{encode_segment(session_id)}/"


def session_index_key(session_id: str, session_seq: int, stream_id: str, first: int, last: int) -> str:
    """The pointer to segment `first`..`last` of `stream_id` for `session_id`, whose first record there is
    `session_seq`."""
    segment_key(stream_id, first, last)  # validates the range
    return (f"{session_prefix(session_id)}{_seq(session_seq, _MAX_SESSION_SEQ):012d}-"
            f"{stream_id}-{first:020d}-{last:020d}")


def parse_session_index_key(key: str) -> tuple[str, int, str, int, int] | None:
    """`(session_id, session_seq, stream_id, first, last)` for an index pointer key, None otherwise."""
    m = _INDEX_KEY.fullmatch(key)
    if not m:
        return None
    try:
        session_id = decode_segment(m.group(1))
    except (ValueError, UnicodeDecodeError):
        return None
    session_seq, first, last = int(m.group(2)), int(m.group(4)), int(m.group(5))
    if session_seq < 1 or not 1 <= first <= last < first + MAX_SEGMENT_RECORDS:
        return None
    return session_id, session_seq, m.group(3), first, last


# -- catalog ------------------------------------------------------------------------------------------------------
def catalog_time(time: str) -> str:
    """`2026-11-26T10:30:09.123Z` (a record's `time`) → `20261126T103009123Z`, the sortable form in catalog keys."""
    m = _RFC3339_MS.fullmatch(time)
    if not m:
        raise ValueError(f"not an RFC 3339 UTC time with milliseconds: {time!r}")
    y, mo, d, h, mi, s, ms = m.groups()
    return f"{y}{mo}{d}T{h}{mi}{s}{ms}Z"


def catalog_key(time: str, stream_id: str, first: int) -> str:
    """Catalog object of the segment of `stream_id` starting at `first`, whose earliest new session started at
    `time` (RFC 3339 with milliseconds)."""
    return f"{CATALOG}{catalog_time(time)}-{check_stream_id(stream_id)}-{_seq(first, _MAX_SEQ):020d}"


def catalog_start(compact_time: str) -> str:
    """List `catalog/` after this key to meet every catalog object whose key time is `compact_time` or later."""
    return f"{CATALOG}{compact_time}"


def catalog_bucket(time: str) -> str:
    """The UTC second of a record time (`20261126T103009`): entries of one catalog object share it."""
    return catalog_time(time)[:15]


def shift(compact: str, ms: int) -> str | None:
    """The compact time `ms` milliseconds later (earlier if negative); None outside years 1-9999."""
    c = compact
    try:
        when = datetime(int(c[0:4]), int(c[4:6]), int(c[6:8]), int(c[9:11]), int(c[11:13]), int(c[13:15]),
                        int(c[15:18]) * 1000, tzinfo=UTC) + timedelta(milliseconds=ms)
    except (OverflowError, ValueError):
        return None
    return f"{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z"


# -- gateway-assigned session ids ---------------------------------------------------------------------------------
def assigned_session_id(epoch: float, unique: str) -> str:
    """A session id for a request that named none: its start time (ms, UTC) and 32 hex chars unique to it."""
    if not re.fullmatch(r"[0-9a-f]{32}", unique):
        raise ValueError("unique part must be 32 lowercase hex chars")
    when = datetime.fromtimestamp(epoch, UTC)
    return f"g{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z-{unique}"


def assigned_session_time(session_id: str) -> str | None:
    """The compact start time in a gateway-assigned session id (a real date, written the canonical way), None for
    any other id."""
    m = _ASSIGNED.fullmatch(session_id)
    if not m or shift(m.group(1), 0) != m.group(1):  # `...T240005...` would otherwise pass for the next day
        return None
    return m.group(1)


def catalog_lookup_window(session_id: str) -> tuple[str, str] | None:
    """For a gateway-assigned id: list `catalog/` after the first key and up to (excluding) the second to meet
    every catalog object that may index its first segment (None for other ids)."""
    t = assigned_session_time(session_id)
    after = shift(t, 1) if t is not None else None
    if t is None or after is None:
        return None
    return f"{CATALOG}{t[:15]}", f"{CATALOG}{after}"


def parse_catalog_key(key: str) -> tuple[str, str, int] | None:
    """`(compact time, stream_id, first)` for a catalog key, None otherwise."""
    m = _CATALOG_KEY.fullmatch(key)
    if not m or int(m.group(3)) < 1:
        return None
    return m.group(1), m.group(2), int(m.group(3))
