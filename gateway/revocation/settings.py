"""`revocations` configuration section (added to ``gateway.config.Settings`` by the app wiring)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RevocationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["memory", "redis"] = "memory"
    """`memory`: one process only. `redis`: every replica shares revocations and learns of new ones via pub/sub."""
    redis_url: str | None = None
    """Redis for the `redis` backend; None lets the app pass a shared URL (e.g. the approvals one)."""
    key_prefix: str = "gw:revocations:"
    """Prefix of the Redis keys (one key per revocation, plus an index sorted set)."""
    channel: str = "gw:revocations:events"
    """Pub/sub channel on which changes are announced to every replica."""
    default_ttl_s: float = Field(24 * 3600.0, gt=0)
    """TTL of a revocation created without `ttl_s`."""
    max_ttl_s: float = Field(30 * 24 * 3600.0, gt=0)
    """Longest TTL accepted; revocations always expire, so a forgotten one cannot lock a subject out for ever."""
    max_staleness_s: float = Field(5.0, gt=0)
    """How long a replica keeps trusting its local mirror after losing contact with Redis. Beyond it the mirror is
    not `fresh` and the revocation filter answers 503 `auth_unavailable` (fail closed): a revocation made meanwhile
    could be missing. Short blips within this window do not turn into 503 storms."""
    heartbeat_s: float = Field(1.0, gt=0)
    """PING on the subscription this often; contact (a pong or a message) is what keeps the mirror fresh."""
    reconnect_initial_s: float = Field(0.1, gt=0)
    """First delay before resubscribing after the subscription broke; doubles up to `reconnect_max_s`."""
    reconnect_max_s: float = Field(2.0, gt=0)
    redis_timeout_s: float = Field(2.0, gt=0)
    """Connect and command timeout; a write that cannot finish in time is `RevocationStoreUnavailable`."""

    @model_validator(mode="after")
    def _consistent(self) -> "RevocationSettings":
        if self.default_ttl_s > self.max_ttl_s:
            raise ValueError("default_ttl_s must not exceed max_ttl_s")
        if self.heartbeat_s >= self.max_staleness_s:
            raise ValueError("heartbeat_s must be shorter than max_staleness_s (else a healthy mirror looks stale)")
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError("reconnect_initial_s must not exceed reconnect_max_s")
        if self.backend == "redis" and self.redis_url is not None and not self.redis_url.startswith(
                ("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
        return self
