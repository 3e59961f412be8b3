"""Webhook events: what the gateway tells the outside world, and the rule that keeps raw text out of it.

Payloads leave the trust boundary (Slack channels, Jira tickets, third-party receivers), so they may only carry what
the caller already masked. `WebhookEvent.data` is passed through *exactly as given*: this package never adds request
bodies, tokens, headers or anything else. To make that rule enforceable rather than a convention, constructing an
event refuses keys that name raw material (`body`, `token`, `authorization`, `raw*`, ...) at any depth, and string
values that look like a bearer token or a JWT. The guard is a tripwire for obvious mistakes, not a masker: text under
an innocent key such as `excerpt` must already be masked by the caller.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, get_args

import orjson

__all__ = ["EVENT_TITLES", "EVENT_TYPES", "EventType", "UnsafePayloadError", "WebhookEvent", "check_payload"]

EventType = Literal[
    "approval.requested",
    "approval.decided",
    "approval.expired",
    "policy.denied",
    "stream.terminated",
    "revocation.created",
    "audit.digest",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

EVENT_TITLES: dict[str, str] = {
    "approval.requested": "Approval requested",
    "approval.decided": "Approval decided",
    "approval.expired": "Approval expired",
    "policy.denied": "Request denied by policy",
    "stream.terminated": "Stream terminated",
    "revocation.created": "Revocation created",
    "audit.digest": "Audit digest published",
}
"""Human titles shared by the Slack and Jira formats."""

# Key names (compared lower-case, `-` read as `_`) that only ever hold raw, unmasked material or credentials.
_FORBIDDEN_KEYS = frozenset({
    "body", "request_body", "response_body", "content", "messages", "prompt", "completion",
    "headers", "authorization", "proxy_authorization", "cookie", "set_cookie",
    "token", "access_token", "refresh_token", "id_token", "bearer", "jwt",
    "password", "secret", "client_secret", "api_key", "apikey",
})
_FORBIDDEN_PREFIXES = ("raw", "unmasked")
# "Bearer <something>" or three base64url segments starting with a JSON header ("eyJ") = a JWT.
_TOKEN_VALUE = re.compile(r"(?i)\bbearer\s+\S{8,}|\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")


class UnsafePayloadError(ValueError):
    """Event data that could carry unmasked text or a credential; the message names the path, never the value."""


def _is_forbidden(key: str) -> bool:
    k = key.lower().replace("-", "_")
    return k in _FORBIDDEN_KEYS or k.startswith(_FORBIDDEN_PREFIXES)


def check_payload(value: Any, path: str = "data") -> None:
    """Raise `UnsafePayloadError` if `value` has a raw-material key or a token-looking string anywhere inside."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise UnsafePayloadError(f"{path}: keys must be strings")
            if _is_forbidden(k):
                raise UnsafePayloadError(f"{path}.{k}: key names raw or secret material; pass masked fields only")
            check_payload(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_payload(v, f"{path}[{i}]")
    elif isinstance(value, str) and _TOKEN_VALUE.search(value):
        raise UnsafePayloadError(f"{path}: value looks like a bearer token or JWT")


def _new_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class WebhookEvent:
    """One thing that happened, delivered to every endpoint subscribed to its type (same id everywhere)."""

    type: EventType
    """One of `EVENT_TYPES`."""
    data: Mapping[str, Any]
    """Already-masked, JSON-serialisable fields (e.g. `approval_id`, `rule`, `requester`, `excerpt`), sent as given.
    Copied at construction, so later changes by the caller do not alter what is delivered."""
    id: str = field(default_factory=_new_id)
    """The `webhook-id`: identical on every retry and every endpoint, so receivers can deduplicate."""
    timestamp: datetime = field(default_factory=_now)
    """When the event happened (UTC); the `webhook-timestamp` header is the time of each attempt instead."""

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {self.type!r}; expected one of {', '.join(EVENT_TYPES)}")
        if not isinstance(self.data, Mapping):
            raise TypeError("WebhookEvent.data must be a mapping")
        if not self.id or "." in self.id or " " in self.id:
            raise ValueError("WebhookEvent.id must be non-empty without '.' or spaces (it is part of the signature)")
        if self.timestamp.tzinfo is None:
            raise ValueError("WebhookEvent.timestamp must be timezone-aware")
        check_payload(self.data)
        try:  # a deep copy that also proves the data serialises, before it reaches a worker
            copied = orjson.loads(orjson.dumps(dict(self.data)))
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise TypeError(f"WebhookEvent.data is not JSON-serialisable: {exc}") from None
        object.__setattr__(self, "data", copied)

    @property
    def iso_timestamp(self) -> str:
        """RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z` (the Standard Webhooks payload form)."""
        return self.timestamp.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @property
    def timestamp_ms(self) -> int:
        """Integer milliseconds since the epoch: safe for canonical audit records, which refuse floats."""
        return int(self.timestamp.timestamp() * 1000)
