"""One object per request/response exchange, carried through the filter chain.

Filters read and change the exchange; the proxy handler owns its I/O. An exchange ends with either an upstream
response or an ``error`` (a local reply), never both: ``error`` is set only when the gateway answered itself.
"""
from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from multidict import CIMultiDict

from gateway.audit.layout import assigned_session_id
from gateway.errors import Dialect, GatewayError
from gateway.principal import Principal

_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_id() -> str:
    """32 hex chars, unique across processes and restarts: a random per-process prefix and a counter.

    Ids name requests and sessions; they are not secrets (clients may choose session ids), so a syscall for
    fresh randomness on every request buys nothing.
    """
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


def new_session_id(started_wall: float) -> str:
    """The session id the gateway assigns to a request that names none: the request's start time (the same reading
    its audit record's `time` comes from) and a `new_id`. The time lets the audit log find the session through its
    catalog, without an index object per one-request session (`gateway.audit.layout`)."""
    return assigned_session_id(started_wall, new_id())


@dataclass(eq=False)
class Exchange:
    method: str
    """HTTP method as received."""
    path: str
    """Raw request path as received (percent-encoding untouched), forwarded as is."""
    query_string: str = ""
    """Raw query string without `?`."""
    request_headers: CIMultiDict = field(default_factory=CIMultiDict)
    """Headers that will be sent upstream; filters may change them (hop-by-hop ones are already removed)."""
    client_ip: str = ""
    """Peer address of the client connection."""
    scheme: str = "http"
    """Scheme the client used (for X-Forwarded-Proto)."""
    host: str = ""
    """Host header the client sent (for X-Forwarded-Host)."""
    dialect: Dialect = "openai"
    """API dialect of the client, used for error bodies and stream parsing."""
    request_id: str = field(default_factory=new_id)
    """Gateway-assigned id, returned as X-Gateway-Request-Id and used in every log line."""
    session_id: str = ""
    """Client-chosen X-Session-Id or one the gateway assigned."""
    session_assigned: bool = False
    """True when the gateway chose the session id (the client sent none)."""
    principal: Principal | None = None
    """The verified caller; set by the auth filter, None before it ran."""
    decision: str = "allow"
    """Outcome label for metrics and the log: allow, deny, error, ... (filters refine it)."""
    rule: str | None = None
    """Name of the policy rule that decided, if any."""
    body: bytes | None = None
    """Request body once read (``await read_body()``); None while still unread on the socket."""
    body_reader: Callable[[], Awaitable[bytes]] | None = field(default=None, repr=False)
    """Reads the body from the client; must enforce ``max_body_bytes`` as data arrives (raise 413)."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Limit on the request body; beyond it the exchange ends with 413."""
    response_status: int | None = None
    """Upstream (or local) status once known."""
    response_headers: CIMultiDict | None = None
    """Headers that will be sent to the client; filters may change them before the first byte."""
    response_content_type: str = ""
    """Lower-cased media type of the upstream response without parameters."""
    error: GatewayError | None = None
    """The local reply, when the gateway answered instead of the upstream (or cut the stream)."""
    started: float = field(default_factory=time.monotonic)
    """Monotonic start time."""
    started_wall: float = field(default_factory=time.time)
    """Wall-clock start time (the audit record's `time`, and the time in a gateway-assigned session id)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds per phase: `upstream_headers`, `first_byte`, `total` ..."""
    annotations: dict[str, object] = field(default_factory=dict)
    """Facts filters leave for later filters, the log and the audit record (never raw payload text)."""
    bytes_out: int = 0
    """Response body bytes written to the client."""

    @property
    def route(self) -> str:
        """A low-cardinality route label for metrics: known API paths, else `other`."""
        return route_label(self.path)

    def mark(self, name: str) -> None:
        """Record the time since start of a named phase, in milliseconds."""
        self.timings[name] = round((time.monotonic() - self.started) * 1000, 3)

    async def read_body(self) -> bytes:
        """Read the whole request body, enforcing ``max_body_bytes`` as it arrives (413 beyond it)."""
        if self.body is not None:
            return self.body
        body = await self.body_reader() if self.body_reader is not None else b""
        if len(body) > self.max_body_bytes:
            raise payload_too_large(self.max_body_bytes)
        self.body_reader = None
        self.body = body
        return body


def payload_too_large(limit: int) -> GatewayError:
    return GatewayError(413, "payload_too_large", f"Request body exceeds the gateway limit of {limit} bytes.")


_KNOWN_ROUTES = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/embeddings",
    "/v1/models",
)


def route_label(path: str) -> str:
    for known in _KNOWN_ROUTES:
        if path == known or path.startswith(known + "/") or path.startswith(known + "?"):
            return known
    return "other"
