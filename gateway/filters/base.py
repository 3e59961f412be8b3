"""The filter protocol and its three verdicts: continue, respond (a local reply), park (wait, then decide).

Request hooks run A→B→C and response hooks C→B→A, like Envoy's decode/encode chain. A filter overrides only the
hooks it needs; ``inspects_response`` must be set for its event hook to be called, so a pass-through chain never
pays for parsing response bodies.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Union

from gateway.dialects.base import Event
from gateway.errors import GatewayError
from gateway.exchange import Exchange


@dataclass(frozen=True, slots=True)
class Continue:
    """Go on to the next filter."""


@dataclass(frozen=True, slots=True)
class Respond:
    """End the exchange here with a local reply in the client's dialect."""

    error: GatewayError


@dataclass(frozen=True, slots=True)
class Park:
    """Hold the exchange until ``resume()`` returns a verdict, or ``timeout_s`` passes (then ``on_timeout``).

    The chain awaits ``resume``; if the client disconnects the handler task is cancelled and so is the wait, so a
    parked filter should clean up in ``finally`` (or on CancelledError).
    """

    resume: Callable[[], Awaitable["Verdict"]]
    timeout_s: float
    on_timeout: GatewayError


Verdict = Union[Continue, Respond, Park]
CONTINUE = Continue()


class Filter:
    """Pass-through base: override what you need. Filters must not keep per-request state on ``self``."""

    name: str = "filter"
    inspects_response: bool = False
    """Set True to receive ``on_response_events``; response bodies are then parsed by the dialect codec."""
    records_output: bool = False
    """Set True to receive ``on_output`` and ``on_finish`` (the audit recorder)."""

    async def on_request(self, ex: Exchange) -> Verdict:
        """Request phase, before forwarding. ``ex.request_headers`` and the body may still change."""
        return CONTINUE

    def on_response_headers(self, ex: Exchange) -> None:
        """Upstream status and headers are known; nothing sent yet. Raise GatewayError to answer locally instead."""

    def on_response_events(self, ex: Exchange, events: list[Event], end_stream: bool) -> list[Event]:
        """Response body, chunk by chunk as parsed events. ``end_stream`` is True on the last call (flush then).

        Return the events to pass on (the same list, changed in place, or another). Raise
        :class:`StreamTerminated` to end the stream with an error event.
        """
        return events

    def on_output(self, ex: Exchange, data: bytes) -> None:
        """Body bytes about to be written to the client, after every transform: response chunks, an in-band
        error event, or a local reply's error body. Exactly what the client receives, in order."""

    async def on_finish(self, ex: Exchange) -> None:
        """Everything the client will receive has passed ``on_output``; the response's end (its final bytes and
        end of body) is not written yet. Raise GatewayError to stop it from completing normally (the client then
        gets that error instead of a reply, or a cut stream)."""

    def on_complete(self, ex: Exchange) -> None:
        """The exchange is over (response sent, error sent, or client gone). Runs before the access log."""


class StreamTerminated(GatewayError):
    """Raised by a response hook to stop a stream mid-flight (`stream_terminated`)."""

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(502, "stream_terminated", message, extra=dict(extra))
