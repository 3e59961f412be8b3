"""Header rules for the proxy hop: what is removed, what is added, in both directions.

Pure functions so they can be tested without sockets.
"""
from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones proxies still see in the wild.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the HTTP client for the upstream hop, never copied from the client. `Expect: 100-continue` was already
# answered on the client hop (the body is read before forwarding); passed on, it would make the upstream request
# wait for a `100 Continue` that a backend ignoring Expect never sends.
_RECOMPUTED = frozenset({"host", "content-length", "expect"})
_FORWARDED_SET = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"})
GATEWAY_PREFIX = "x-gateway-"


def connection_named(headers: CIMultiDictProxy | CIMultiDict) -> set[str]:
    """Header names listed in `Connection` (they are hop-by-hop too, RFC 9110 §7.6.1)."""
    named: set[str] = set()
    for value in headers.getall("Connection", ()):
        for token in value.split(","):
            token = token.strip().lower()
            if token:
                named.add(token)
    return named


def strip_hop_by_hop(headers: CIMultiDictProxy | CIMultiDict, also: frozenset[str] = frozenset()) -> CIMultiDict:
    drop = HOP_BY_HOP | connection_named(headers) | also
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def inbound_headers(incoming: CIMultiDictProxy | CIMultiDict, *, trust_forwarded: bool) -> CIMultiDict:
    """The client's end-to-end headers, as the filters see them and (after ``finish_upstream_headers``) the
    upstream gets them: without hop-by-hop fields, anything pretending to come from the gateway, and
    client-supplied forwarding headers (unless the gateway sits behind a trusted balancer)."""
    drop = HOP_BY_HOP | _RECOMPUTED | connection_named(incoming)
    if not trust_forwarded:
        drop = drop | _FORWARDED_SET
    return CIMultiDict(
        (k, v) for k, v in incoming.items() if (low := k.lower()) not in drop and not low.startswith(GATEWAY_PREFIX)
    )


def finish_upstream_headers(
    headers: CIMultiDict,
    *,
    client_ip: str,
    scheme: str,
    host: str,
    forward_authorization: bool,
    trust_forwarded: bool,
    extra: dict[str, str],
) -> CIMultiDict:
    """Complete the upstream request headers in place: credentials, forwarding headers, encoding, extras."""
    if not forward_authorization:
        headers.popall("Authorization", None)
    prior = headers.popall("X-Forwarded-For", []) if trust_forwarded else []
    headers["X-Forwarded-For"] = ", ".join([*prior, client_ip]) if client_ip else ", ".join(prior)
    headers.setdefault("X-Forwarded-Proto", scheme)
    if host:
        headers.setdefault("X-Forwarded-Host", host)
    # Masking must see plain text: a compressed body would pass unread. aiohttp's client is also told not to
    # decompress, so bytes stay exactly as the upstream sent them.
    headers["Accept-Encoding"] = "identity"
    for name, value in extra.items():
        headers[name] = value
    return headers


def client_response_headers(upstream: CIMultiDictProxy | CIMultiDict, *, body_rewritten: bool) -> CIMultiDict:
    """Headers to send to the client for an upstream response. A rewritten body loses its length."""
    also = {"content-length"} if body_rewritten else set()
    out = strip_hop_by_hop(upstream, frozenset(also))
    # Never let the upstream speak for the gateway.
    for name in [k for k in out if k.lower().startswith(GATEWAY_PREFIX)]:
        out.popall(name)
    return out
