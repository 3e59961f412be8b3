"""Canonical JSON bytes (RFC 8785 / JCS style) — what every hash and signature in the log is computed over.

The rules, and how they line up with RFC 8785:

- UTF-8, no insignificant whitespace, object members sorted by key. RFC 8785 sorts by UTF-16 code units; we sort by
  code point. The two orders differ only between a key character in U+E000..U+FFFF and an astral one at the same
  position; keys that could do that are refused (`CanonicalError`), so the output is always valid JCS.
- Strings: `"` and `\\` escaped, control characters as `\\b \\f \\n \\r \\t` or `\\u00xx` (lowercase hex), everything
  else literal (no `\\/`, no escaping of non-ASCII). Lone surrogates are refused.
- Numbers: **integers only**, within ±(2^53 − 1) so every JCS implementation reads them exactly. Floats — and with
  them NaN and ±Infinity — are refused: the log stores times as integer milliseconds/microseconds.
- `true`, `false`, `null`, arrays, objects with string keys. Nothing else (no bytes, no tuples-as-something-else).

`canonical_bytes` validates and encodes (used when records and digests are created). `encode` is the fast path
for data that came from `decode` (the verifier): orjson emits exactly the canonical form for such data, and the
verifier compares the stored bytes with the re-encoding, so any non-canonical byte is caught anyway.
"""
from __future__ import annotations

from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
MAX_INT = 2**53 - 1


class CanonicalError(ValueError):
    """A value that has no canonical encoding in the log (a float, a huge integer, a non-string key...)."""


def _check(value: Any, path: str) -> None:
    t = type(value)
    if t is str or value is None or t is bool:
        return
    if t is int:
        if -MAX_INT <= value <= MAX_INT:
            return
        raise CanonicalError(f"integer out of the exact range at {path or '$'}")
    if t is float:
        raise CanonicalError(f"floats are not allowed (use integer ms/us) at {path or '$'}")
    if t is dict:
        astral = bmp_high = False
        for k, v in value.items():
            if type(k) is not str:
                raise CanonicalError(f"non-string key at {path or '$'}")
            if not k.isascii():
                astral = astral or any(ord(c) > 0xFFFF for c in k)
                bmp_high = bmp_high or any(0xE000 <= ord(c) <= 0xFFFF for c in k)
            _check(v, f"{path}.{k}")
        if astral and bmp_high:
            raise CanonicalError(f"keys mixing U+E000..U+FFFF and astral characters at {path or '$'}")
        return
    if t is list:
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]")
        return
    raise CanonicalError(f"{t.__name__} is not a JSON value at {path or '$'}")


def canonical_bytes(value: Any) -> bytes:
    """Validate `value` and return its canonical JSON bytes."""
    _check(value, "")
    try:
        return orjson.dumps(value, option=_OPTS)
    except orjson.JSONEncodeError as e:  # lone surrogates
        raise CanonicalError(str(e)) from None


def encode(value: Any) -> bytes:
    """Canonical bytes without the structural check (for values produced by `decode`)."""
    return orjson.dumps(value, option=_OPTS)


def decode(data: bytes) -> Any:
    """Parse JSON bytes (any valid JSON; canonicality is checked by re-encoding and comparing)."""
    return orjson.loads(data)
