"""Incremental Server-Sent Events decoder (WHATWG EventSource parsing rules) that keeps every event's raw bytes.

Bytes may arrive split at any offset: inside a CRLF, inside a multibyte UTF-8 character, anywhere. Lines are only
decoded once complete (their terminators are ASCII, so a complete line never ends mid-character), and a CR at the
very end of the buffer is held back until the next byte says whether it is a CR or the first half of a CRLF.

Each event's ``raw`` is the exact bytes of the event including its terminating blank line (and the stream's BOM
for the first event), so joining the raws of all events, plus the trailing partial event flushed by ``close()``,
gives back the input byte for byte. Blocks without data (``: ping`` keep-alives, lone ``id:``) are events too,
so that they pass through the gateway.

Deviations from a browser, on purpose: ``id`` is reported per event rather than carried over as the "last event
id", and an unterminated event at end of stream is returned (``complete=False``) instead of being discarded,
because a proxy must neither lose those bytes nor let their text bypass inspection.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_LF, _CR, _COLON, _SPACE = 10, 13, 58, 32


@dataclass(slots=True)
class SseEvent:
    """One decoded event (the block of lines up to a blank line)."""

    raw: bytes
    """Exact bytes of the event, terminating blank line included."""
    event: str | None = None
    """Value of the last `event:` field, if any."""
    data: str | None = None
    """All `data:` values joined with "\\n"; None when the block had no data field."""
    id: str | None = None
    """Value of the `id:` field in this block (ignored when it contains NUL, as the spec says)."""
    retry: int | None = None
    """`retry:` value when it is all ASCII digits."""
    comments: tuple[str, ...] = ()
    """Text after the `:` of each comment line."""
    complete: bool = True
    """False for a trailing event that the stream ended before terminating."""


class SseDecoder:
    """Feed bytes, get back the events they complete. One decoder per stream."""

    __slots__ = ("_buf", "_pos", "_scan", "_bom_pending", "_event", "_data", "_id", "_retry", "_comments")

    def __init__(self) -> None:
        self._buf = b""
        """Bytes of the event being received, from its first byte."""
        self._pos = 0
        """Offset in _buf where the next unparsed line starts."""
        self._scan = 0
        """Offset in _buf before which there is no line terminator still to be found (avoids rescanning)."""
        self._bom_pending = True
        self._reset_fields()

    def _reset_fields(self) -> None:
        self._event: bytes | None = None
        self._data: list[bytes] | None = None
        self._id: bytes | None = None
        self._retry: int | None = None
        self._comments: list[bytes] | None = None

    def feed(self, data: bytes) -> list[SseEvent]:
        """Add received bytes; return the events completed so far."""
        if not data:
            return []
        self._buf = self._buf + data if self._buf else bytes(data)
        return self._parse(final=False)

    def close(self) -> list[SseEvent]:
        """End of stream: return the remaining events, the last one possibly unterminated."""
        events = self._parse(final=True)
        buf = self._buf
        if buf:
            if self._pos < len(buf):  # the last line had no terminator
                self._field(buf[self._pos:])
            events.append(self._make_event(buf, complete=False))
        self._buf, self._pos, self._scan = b"", 0, 0
        return events

    def _parse(self, final: bool) -> list[SseEvent]:
        buf = self._buf
        n = len(buf)
        if self._bom_pending:
            if n < len(_BOM) and _BOM.startswith(buf) and not final:
                return []  # could still become a BOM
            self._bom_pending = False
            if buf.startswith(_BOM):
                self._pos = self._scan = len(_BOM)
        events: list[SseEvent] = []
        pos = self._pos
        event_start = 0
        # Both finds run in C; each result is reused until pos passes it, so a long chunk is scanned once.
        lf = buf.find(b"\n", self._scan)
        cr = buf.find(b"\r", self._scan)
        scan_end = n
        while lf != -1 or cr != -1:
            if cr == -1 or (lf != -1 and lf < cr):
                end = nxt = lf
                nxt += 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == _LF else cr + 1
                elif final:
                    nxt = cr + 1
                else:
                    scan_end = cr  # CR or CRLF? the next chunk tells
                    break
            if end == pos:  # blank line: the event is complete
                events.append(self._make_event(buf[event_start:nxt], complete=True))
                event_start = nxt
            else:
                self._field(buf[pos:end])
            pos = nxt
            if lf != -1 and lf < pos:
                lf = buf.find(b"\n", pos)
            if cr != -1 and cr < pos:
                cr = buf.find(b"\r", pos)
        if event_start:
            buf = buf[event_start:]
        self._buf = buf
        self._pos = pos - event_start
        self._scan = max(scan_end - event_start, self._pos)
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == _COLON:
            if self._comments is None:
                self._comments = []
            self._comments.append(line[1:])
            return
        colon = line.find(b":")
        if colon == -1:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1:]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\0" not in value:
                self._id = value
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)

    def _make_event(self, raw: bytes, complete: bool) -> SseEvent:
        data = self._data
        event = SseEvent(
            raw,
            None if self._event is None else self._event.decode("utf-8", "replace"),
            None if data is None else (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace"),
            None if self._id is None else self._id.decode("utf-8", "replace"),
            self._retry,
            () if self._comments is None else tuple(c.decode("utf-8", "replace") for c in self._comments),
            complete,
        )
        self._reset_fields()
        return event


_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n|\Z)")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def rewrite_data(raw: bytes, data: str) -> bytes:
    """Return ``raw`` (one event's bytes) with its data lines replaced by ``data``, everything else kept.

    The new data goes where the first data line was (before the blank line if there was none), with that line's
    terminator, as `data: ` lines (one per line of ``data``). Other fields, comments and terminators stay as they
    were, so the event keeps its field order and line-ending style. Only used for events a filter changed.
    """
    bom = _BOM if raw.startswith(_BOM) else b""
    lines = [(m.group(1), m.group(2)) for m in _LINE.finditer(raw, len(bom)) if m.group(0)]
    default_term = next((term for _, term in lines if term), b"\n")
    new_lines = [b"data: " + part.encode("utf-8") for part in _NEWLINES.split(data)]
    out = [bom]
    placed = False
    for content, term in lines:
        if content[:4] == b"data" and (len(content) == 4 or content[4] == _COLON):
            if not placed:  # an unterminated last line stays unterminated
                out.append((term or default_term).join(new_lines) + term)
                placed = True
            continue
        if not content and not placed:  # the blank line ends an event that had no data lines
            out.extend(line + default_term for line in new_lines)
            placed = True
        out.append(content + term)
    if not placed:
        out.extend(line + default_term for line in new_lines)
    return b"".join(out)
