"""The two body framings every JSON dialect shares: an SSE stream of JSON events, and one whole JSON body.

A dialect only supplies an *extractor*: ``(payload, sse_event_name) -> list[Delta]`` that finds the texts in a
parsed JSON object. Everything else (framing, byte-exact pass-through, re-serialising, unparseable data) lives
here, once.

Data we cannot parse as a JSON object cannot be inspected field by field, yet it may still carry text to mask, so
it becomes one opaque TEXT delta (``path=()``, ``stream_key="text"``) and, when changed, is written back as that
text. The SSE terminator ``[DONE]`` and data-less blocks (keep-alive comments) carry no deltas.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from gateway.dialects.base import ALL_STREAMS, TEXT, Delta, Event
from gateway.dialects.sse import SseDecoder, SseEvent, rewrite_data

Extractor = Callable[[dict[str, Any], "str | None"], list[Delta]]
"""Finds the deltas in one parsed JSON object; the second argument is the SSE `event:` name (None for bodies)."""
Closer = Callable[[dict[str, Any], "str | None", list[Delta]], tuple[str, ...]]
"""Names the logical streams a parsed event ends (``Event.closes``), given the event and its deltas."""


def _no_closes(payload: dict[str, Any], event_name: str | None, deltas: list[Delta]) -> tuple[str, ...]:
    return ()

OPAQUE_STREAM_KEY = "text"


def is_text(value: Any) -> bool:
    """A non-empty string: empty or null texts never become deltas."""
    return isinstance(value, str) and bool(value)


def dump_json(payload: Any) -> str:
    """Compact JSON as the upstreams send it (unicode kept as is, not \\u-escaped)."""
    try:
        return orjson.dumps(payload).decode()
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits (stdlib-parsed): let the stdlib write them
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _opaque_deltas(text: str) -> list[Delta]:
    return [Delta(TEXT, text, (), OPAQUE_STREAM_KEY)] if text else []


def _new_text(event: Event) -> str | None:
    """What a dirty event now says: its payload as JSON, its opaque text, or None if it had neither."""
    if event.payload is not None:
        return dump_json(event.payload)
    if event.deltas:
        return "".join(d.text for d in event.deltas)
    return None


def _splice(event: Event) -> bytes | None:
    """``raw`` with each replaced string value patched in place, or None when that is not certain to be right.

    A value is patched only when its JSON form (quotes included, escaped as we would) occurs exactly once in the
    event's bytes; otherwise (another escaping style, the same text twice) the caller re-serialises the payload.
    This keeps the upstream's own formatting and costs a fraction of a full json.dumps per masked chunk.
    """
    raw = event.raw
    for old, new in event.splices or ():
        needle = orjson.dumps(old)  # the same escaping as dump_json: only quotes, backslashes, control characters
        if raw.count(needle) != 1:
            return None
        raw = raw.replace(needle, orjson.dumps(new))
    return raw


def _loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # NaN, huge ints, lone surrogates...: the stdlib is more lenient
        return json.loads(data)


def _looks_like_object(data: str) -> bool:
    return data[:1] == "{" or data.lstrip()[:1] == "{"


class SseCodec:
    """A `text/event-stream` body whose events carry JSON objects."""

    def __init__(self, dialect: str, extract: Extractor, closer: Closer = _no_closes) -> None:
        self.dialect = dialect
        self._extract = extract
        self._closer = closer
        self._decoder = SseDecoder()

    def decode(self, data: bytes, end_stream: bool) -> list[Event]:
        sse_events = self._decoder.feed(data)
        if end_stream:
            sse_events += self._decoder.close()
        return [self._to_event(sse) for sse in sse_events]

    def _to_event(self, sse: SseEvent) -> Event:
        data = sse.data
        if data == "[DONE]":
            return Event(raw=sse.raw, name=sse.event, closes=(ALL_STREAMS,))
        if data is None:
            return Event(raw=sse.raw, name=sse.event)
        if _looks_like_object(data):
            try:
                payload = _loads(data)
            except ValueError:
                pass
            else:
                if isinstance(payload, dict):
                    deltas = self._extract(payload, sse.event)
                    closes = self._closer(payload, sse.event, deltas)
                    return Event(sse.raw, deltas, payload, sse.event, closes=closes)
        return Event(raw=sse.raw, deltas=_opaque_deltas(data), name=sse.event)

    def encode(self, events: list[Event]) -> bytes:
        out = []
        for event in events:
            if event.dropped:
                continue
            if not event.dirty:
                out.append(event.raw)
                continue
            patched = _splice(event) if event.splices and event.payload is not None else None
            if patched is not None:
                out.append(patched)
                continue
            text = _new_text(event)
            # A dirty event with nothing to say (a keep-alive someone touched) is sent as it came.
            out.append(event.raw if text is None else rewrite_data(event.raw, text))
        return b"".join(out)


class JsonBodyCodec:
    """A whole JSON body (a non-streaming response): buffered until the end, then one event."""

    def __init__(self, dialect: str, extract: Extractor) -> None:
        self.dialect = dialect
        self._extract = extract
        self._chunks: list[bytes] = []

    def decode(self, data: bytes, end_stream: bool) -> list[Event]:
        if data:
            self._chunks.append(data)
        if not end_stream:
            return []
        body = b"".join(self._chunks)
        self._chunks = []
        if not body:
            return []
        try:
            payload = _loads(body)
        except ValueError:  # also UnicodeDecodeError
            payload = None
        if isinstance(payload, dict):
            return [Event(raw=body, deltas=self._extract(payload, None), payload=payload)]
        return [Event(raw=body, deltas=_opaque_deltas(body.decode("utf-8", "replace")))]

    def encode(self, events: list[Event]) -> bytes:
        out = []
        for event in events:
            if event.dropped:
                continue
            text = _new_text(event) if event.dirty else None
            out.append(event.raw if text is None else text.encode("utf-8"))
        return b"".join(out)
