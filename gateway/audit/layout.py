"""Object keys of the audit log: pure functions, the only place key names are spelled.

Layout (every name below is relative to the store's root, e.g. the `s3://bucket/prefix/`)::

    streams/<stream_id>/records/<stream_seq:020d>.json
        One record: its canonical JSON bytes, `hash` included (see `record.py`). A writer stream belongs to one
        gateway process, so only one writer ever creates keys here; `stream_seq` starts at 1 and has no gaps.
    streams/<stream_id>/digests/<digest_seq:020d>.json
        One signed digest of the stream (see `digest.py`); `digest_seq` starts at 1.
    sessions/<session>/<session_seq:012d>-<stream_id>-<stream_seq:020d>
        Session index pointer; its body is the record's hash (64 hex chars, ASCII). Listing the prefix
        `sessions/<session>/` yields the session's records in session order (zero padding makes the lexicographic
        order numeric), each naming the stream object that holds it: one prefix list per session.

    catalog/<time:YYYYMMDDTHHMMSSmmmZ>-<session>
        Session catalog entry, written with a session's first record (`session_seq` 1); its body is canonical JSON
        ``{"session_id", "subject", "time", "hash"}`` (the first record's principal, time and hash). Listing
        `catalog/` between two times finds the sessions started in that window (`GET /admin/sessions`); the body
        lets a subject filter run without fetching records. Not part of any chain: the verifier ignores it.

`<session>` is the session id with every character outside ``[A-Za-z0-9_.-]`` (and a leading ``.``) written as
``=XX`` per UTF-8 byte, so ``alice@x:1`` becomes ``alice=40x=3A1``; the mapping is reversible (`decode_segment`).
Zero padding: 20 digits hold any 64-bit counter; 12 digits hold 10^12 records per session.
"""
from __future__ import annotations

import re

STREAMS = "streams/"
SESSIONS = "sessions/"
CATALOG = "catalog/"

_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_RECORD_KEY = re.compile(r"streams/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/records/(\d{20})\.json")
_DIGEST_KEY = re.compile(r"streams/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/digests/(\d{20})\.json")
_INDEX_KEY = re.compile(r"sessions/([^/]+)/(\d{12})-([A-Za-z0-9][A-Za-z0-9_-]{0,63})-(\d{20})")
_CATALOG_KEY = re.compile(r"catalog/(\d{8}T\d{9}Z)-([^/]+)")
_RFC3339_MS = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z")
_MAX_SEQ = 10**20 - 1
_MAX_SESSION_SEQ = 10**12 - 1


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


def record_prefix(stream_id: str) -> str:
    return f"{stream_prefix(stream_id)}records/"


def record_key(stream_id: str, stream_seq: int) -> str:
    return f"{record_prefix(stream_id)}{_seq(stream_seq, _MAX_SEQ):020d}.json"


def digest_prefix(stream_id: str) -> str:
    return f"{stream_prefix(stream_id)}digests/"


def digest_key(stream_id: str, digest_seq: int) -> str:
    return f"{digest_prefix(stream_id)}{_seq(digest_seq, _MAX_SEQ):020d}.json"


def parse_record_key(key: str) -> tuple[str, int] | None:
    """`(stream_id, stream_seq)` for a record key, None for any other key."""
    m = _RECORD_KEY.fullmatch(key)
    return (m.group(1), int(m.group(2))) if m and int(m.group(2)) >= 1 else None


def parse_digest_key(key: str) -> tuple[str, int] | None:
    """`(stream_id, digest_seq)` for a digest key, None for any other key."""
    m = _DIGEST_KEY.fullmatch(key)
    return (m.group(1), int(m.group(2))) if m and int(m.group(2)) >= 1 else None


# -- sessions -----------------------------------------------------------------------------------------------------
def session_prefix(session_id: str) -> str:
    """List this prefix to get a session's index pointers in session order."""
    return f"{SESSIONS}{encode_segment(session_id)}/"


def session_index_key(session_id: str, session_seq: int, stream_id: str, stream_seq: int) -> str:
    return (f"{session_prefix(session_id)}{_seq(session_seq, _MAX_SESSION_SEQ):012d}-"
            f"{check_stream_id(stream_id)}-{_seq(stream_seq, _MAX_SEQ):020d}")


def parse_session_index_key(key: str) -> tuple[str, int, str, int] | None:
    """`(session_id, session_seq, stream_id, stream_seq)` for an index pointer key, None otherwise."""
    m = _INDEX_KEY.fullmatch(key)
    if not m:
        return None
    try:
        session_id = decode_segment(m.group(1))
    except (ValueError, UnicodeDecodeError):
        return None
    session_seq, stream_seq = int(m.group(2)), int(m.group(4))
    if session_seq < 1 or stream_seq < 1:
        return None
    return session_id, session_seq, m.group(3), stream_seq


# -- catalog ------------------------------------------------------------------------------------------------------
def catalog_time(time: str) -> str:
    """`2026-11-26T10:30:09.123Z` (a record's `time`) → `20261126T103009123Z`, the sortable form in catalog keys."""
    m = _RFC3339_MS.fullmatch(time)
    if not m:
        raise ValueError(f"not an RFC 3339 UTC time with milliseconds: {time!r}")
    y, mo, d, h, mi, s, ms = m.groups()
    return f"{y}{mo}{d}T{h}{mi}{s}{ms}Z"


def catalog_key(time: str, session_id: str) -> str:
    """Catalog entry of a session that started at `time` (RFC 3339 with milliseconds)."""
    return f"{CATALOG}{catalog_time(time)}-{encode_segment(session_id)}"


def parse_catalog_key(key: str) -> tuple[str, str] | None:
    """`(compact time, session_id)` for a catalog key, None otherwise."""
    m = _CATALOG_KEY.fullmatch(key)
    if not m:
        return None
    try:
        return m.group(1), decode_segment(m.group(2))
    except (ValueError, UnicodeDecodeError):
        return None
