"""The `webhooks` configuration section.

Either a list of `endpoints`, or the contract's one-endpoint shorthand (`url`, `secret`, `events`, `format` directly
under `webhooks`), which is read as a single endpoint. Endpoint URLs and extra header values are `SecretStr`:
a Slack incoming-webhook URL *is* its credential, so neither may be printed by a config dump or a log line.
"""
from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.webhooks.events import EVENT_TYPES, EventType
from gateway.webhooks.signing import decode_secret

__all__ = ["JiraSettings", "WebhookEndpoint", "WebhooksSettings", "redact_url"]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = frozenset({
    "content-type", "content-length", "host", "transfer-encoding",
    "webhook-id", "webhook-timestamp", "webhook-signature",
})
_SHORTHAND_KEYS = ("url", "secret", "events", "format", "timeout_s", "headers", "name")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url


def redact_url(url: str) -> str:
    """`scheme://host[:port]`, plus `/…` when there was a path or query: safe for logs and audit records."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    origin = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    return origin + ("/…" if parts.path not in ("", "/") or parts.query else "")


class WebhookEndpoint(_Section):
    url: SecretStr
    """Where to POST (http or https). Treated as a secret: it is never logged; logs use `name` or `redact_url`."""
    secret: list[SecretStr] = Field(default_factory=list)
    """One `whsec_<base64>` key, or a list for rotation (each adds a signature). Required for the generic format."""
    events: list[EventType] = Field(default_factory=lambda: list(EVENT_TYPES))
    """Event types sent to this endpoint (default: all)."""
    format: Literal["generic", "slack", "jira"] = "generic"
    """generic = `{type, timestamp, data}`; slack = incoming-webhook message; jira = REST issue-create body."""
    timeout_s: float = Field(10.0, gt=0, le=300)
    """Whole-attempt timeout (connect + send + response headers); a timeout is retried."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra request headers, e.g. `Authorization` for Jira. The content type and `webhook-*` are reserved."""
    name: str | None = Field(None, min_length=1, max_length=64)
    """Label in logs and dead-letter records (default: the redacted URL)."""

    @field_validator("secret", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | SecretStr) else v

    @field_validator("secret")
    @classmethod
    def _whsec(cls, v: list[SecretStr]) -> list[SecretStr]:
        for i, s in enumerate(v):
            try:
                decode_secret(s.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"secret[{i}] {exc}") from None
        return v

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: SecretStr) -> SecretStr:
        _check_http_url(v.get_secret_value())
        return v

    @field_validator("events")
    @classmethod
    def _unique_events(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one event type (omit the key for all)")
        return list(dict.fromkeys(v))

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, value in v.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{name!r} is set by the gateway and cannot be overridden")
            if any(c in value.get_secret_value() for c in "\r\n\0"):
                raise ValueError(f"the value of {name!r} contains a line break or NUL")
        return v

    @model_validator(mode="after")
    def _generic_is_signed(self) -> "WebhookEndpoint":
        # Slack and Jira ignore signatures (the URL / an Authorization header authenticates); a generic
        # receiver has nothing else to trust.
        if self.format == "generic" and not self.secret:
            raise ValueError("a generic endpoint needs a `secret` (whsec_...) so receivers can verify it")
        return self

    @property
    def keys(self) -> list[bytes]:
        """The decoded HMAC keys, in configuration order."""
        return [decode_secret(s.get_secret_value()) for s in self.secret]

    @property
    def label(self) -> str:
        return self.name or redact_url(self.url.get_secret_value())


class JiraSettings(_Section):
    project_key: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,99}$")
    """The Jira project key, e.g. `SEC`."""
    issue_type: str = Field("Task", min_length=1)
    api_version: Literal[2, 3] = 2
    """2: `description` is wiki-markup text (`/rest/api/2/issue`); 3: an Atlassian Document (`/rest/api/3/issue`)."""
    labels: list[str] = Field(default_factory=list)
    """Added to every issue (no spaces, Jira's rule)."""

    @field_validator("labels")
    @classmethod
    def _no_spaces(cls, v: list[str]) -> list[str]:
        if any(not label or any(c.isspace() for c in label) for label in v):
            raise ValueError("Jira labels must be non-empty and contain no whitespace")
        return v


class WebhooksSettings(_Section):
    endpoints: list[WebhookEndpoint] = Field(default_factory=list)
    queue_size: int = Field(1000, ge=1, le=1_000_000)
    """Pending deliveries per endpoint; when full, new events for it are dropped (counted, dead-lettered)."""
    concurrency: int = Field(2, ge=1, le=64)
    """Deliveries in progress per endpoint (a retrying delivery keeps its slot while it waits)."""
    max_attempts: int = Field(8, ge=1, le=50)
    """Attempts per delivery, the first included, before it is dead-lettered."""
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    """Retry n waits a uniform random time in [0, min(backoff_max_s, backoff_initial_s * 2**(n-1))]."""
    retry_after_max_s: float = Field(300.0, ge=0)
    """A receiver's `Retry-After` (on 429/503) is honoured up to this many seconds."""
    console_url: str | None = None
    """Public base URL of the web console (e.g. `https://gw.example.com/admin/ui`) for links; required for slack."""
    jira: JiraSettings | None = None
    """Required when an endpoint uses the jira format."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "url" not in data:
            return data
        if "endpoints" in data:
            raise ValueError("use either `url` (one endpoint) or `endpoints`, not both")
        rest = {k: v for k, v in data.items() if k not in _SHORTHAND_KEYS}
        rest["endpoints"] = [{k: data[k] for k in _SHORTHAND_KEYS if k in data}]
        return rest

    @field_validator("console_url")
    @classmethod
    def _console(cls, v: str | None) -> str | None:
        return None if v is None else _check_http_url(v).rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> "WebhooksSettings":
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        formats = {e.format for e in self.endpoints}
        if "jira" in formats and self.jira is None:
            raise ValueError("an endpoint uses the jira format: set `jira.project_key`")
        if "slack" in formats and self.console_url is None:
            raise ValueError("an endpoint uses the slack format: set `console_url` so messages link to the console")
        return self
