"""Runs an ordered list of filters over one exchange.

Request hooks run first to last; the forwarder comes after the last one; response hooks run last to first.
Response bodies are parsed into events only when some filter inspects them, so a chain of header-only filters
passes upstream bytes through untouched.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import structlog

from gateway.dialects import codec_for
from gateway.dialects.base import Codec, Event
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.base import Continue, Filter, Park, Respond, Verdict

log = structlog.get_logger("gateway.chain")

Hold = Callable[[], AbstractAsyncContextManager[None]]


class FilterChain:
    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters: tuple[Filter, ...] = tuple(filters)
        self._reversed = tuple(reversed(self.filters))
        self._inspecting = tuple(f for f in self._reversed if f.inspects_response)
        self._recording = tuple(f for f in self._reversed if f.records_output)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.filters]

    async def run_request(self, ex: Exchange, hold: Hold | None = None) -> None:
        """Run request hooks in order. Raises GatewayError when a filter answers locally. `hold` is entered for
        the time a filter keeps the exchange parked (the proxy uses it to keep a streaming client's line alive)."""
        for flt in self.filters:
            verdict = await flt.on_request(ex)
            while isinstance(verdict, Park):
                if hold is None:
                    verdict = await self._wait(ex, flt, verdict)
                else:
                    async with hold():
                        verdict = await self._wait(ex, flt, verdict)
            if isinstance(verdict, Respond):
                raise verdict.error
            if not isinstance(verdict, Continue):
                raise TypeError(f"filter {flt.name!r} returned {verdict!r}, not a Verdict")

    @staticmethod
    async def _wait(ex: Exchange, flt: Filter, park: Park) -> Verdict:
        ex.annotations.setdefault("parked_by", flt.name)
        try:
            return await asyncio.wait_for(park.resume(), timeout=park.timeout_s)
        except asyncio.TimeoutError:
            return Respond(park.on_timeout)

    def run_response_headers(self, ex: Exchange) -> None:
        for flt in self._reversed:
            flt.on_response_headers(ex)

    @property
    def rewrites_body(self) -> bool:
        """True when response bodies go through the dialect codec (and so may change length)."""
        return bool(self._inspecting)

    def body_transform(self, ex: Exchange) -> "BodyTransform":
        if not self._inspecting:
            return PassThrough()
        return EventTransform(ex, codec_for(ex.path.split("?", 1)[0], ex.response_content_type), self._inspecting)

    @property
    def records_output(self) -> bool:
        return bool(self._recording)

    def run_output(self, ex: Exchange, data: bytes) -> None:
        for flt in self._recording:
            flt.on_output(ex, data)

    async def run_finish(self, ex: Exchange) -> None:
        """Before the response ends: recording filters make what was sent durable (may raise GatewayError)."""
        for flt in self._recording:
            await flt.on_finish(ex)

    def run_complete(self, ex: Exchange) -> None:
        for flt in self._reversed:
            try:
                flt.on_complete(ex)
            except Exception:  # a completion hook must not hide the outcome of the exchange
                log.exception("filter_complete_failed", filter=flt.name, request_id=ex.request_id)


class BodyTransform:
    """Turns upstream body bytes into client body bytes, chunk by chunk."""

    def feed(self, data: bytes, end_stream: bool) -> bytes:
        raise NotImplementedError


class PassThrough(BodyTransform):
    def feed(self, data: bytes, end_stream: bool) -> bytes:
        return data


class EventTransform(BodyTransform):
    """Decode to events, let each inspecting filter see them (last filter first), encode back."""

    def __init__(self, ex: Exchange, codec: Codec, filters: Sequence[Filter]) -> None:
        self.ex = ex
        self.codec = codec
        self.filters = filters
        ex.annotations["dialect"] = codec.dialect

    def feed(self, data: bytes, end_stream: bool) -> bytes:
        events: list[Event] = self.codec.decode(data, end_stream)
        if not events and not end_stream:
            return b""
        for flt in self.filters:
            events = flt.on_response_events(self.ex, events, end_stream)
        return self.codec.encode(events)


__all__ = ["FilterChain", "BodyTransform", "PassThrough", "EventTransform", "GatewayError"]
