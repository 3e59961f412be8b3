"""Any body in no known dialect: each received chunk becomes one event with one TEXT delta.

The bytes are decoded as UTF-8 incrementally: a character split across two chunks is carried over whole to the
next chunk instead of turning into two replacement characters, which would both corrupt the text and hide it from
the detectors. So an event's ``raw`` is exactly the bytes whose text is in its delta (a chunk's incomplete tail
belongs to the next event), and joining the raws gives back the body. At the end of the stream whatever is left
is decoded with ``errors="replace"``. Bytes that are not UTF-8 at all are replaced too, but only matter when a
filter rewrites the event; untouched events go out as their raw bytes.

Every delta has ``path=()`` and ``stream_key="text"``: the whole body is one logical stream.
"""
from __future__ import annotations

from gateway.dialects.base import TEXT, Delta, Event

DIALECT = "opaque"
STREAM_KEY = "text"


def incomplete_utf8_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character that the next bytes would complete."""
    # Only the last 3 bytes can be an unfinished 2-, 3- or 4-byte sequence; look back for its lead byte.
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: this is the lead (or ASCII)
            if byte >= 0xF0:
                needed = 4 if byte <= 0xF4 else 1
            elif byte >= 0xE0:
                needed = 3
            elif byte >= 0xC2:
                needed = 2
            else:
                needed = 1  # ASCII or an invalid lead: nothing to wait for
            return back if needed > back else 0
    return 0  # three continuation bytes in a row: whatever they belong to cannot be completed any more


class OpaqueCodec:
    """Chunk-by-chunk text view of an unknown body."""

    dialect = DIALECT

    def __init__(self) -> None:
        self._carry = b""

    def decode(self, data: bytes, end_stream: bool) -> list[Event]:
        if self._carry:
            data = self._carry + data
        cut = len(data) if end_stream else len(data) - incomplete_utf8_tail(data)
        self._carry = data[cut:]
        raw = data[:cut]
        if not raw:
            return []
        text = raw.decode("utf-8", "replace")
        return [Event(raw=raw, deltas=[Delta(TEXT, text, (), STREAM_KEY)])]

    def encode(self, events: list[Event]) -> bytes:
        out = []
        for event in events:
            if event.dropped:
                continue
            if event.dirty:
                out.append("".join(d.text for d in event.deltas).encode("utf-8"))
            else:
                out.append(event.raw)
        return b"".join(out)
