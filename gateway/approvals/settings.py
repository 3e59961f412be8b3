"""Settings of the approval gate and its store (the `approvals` section of the gateway configuration)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ApprovalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["memory", "redis"] = "memory"
    """`memory`: one process only (the embedded default). `redis`: shared by every replica."""
    redis_url: str | None = None
    """`redis://host:port/db` (or `rediss://`, `unix://`); required with the redis backend."""
    hold_s: float = Field(30.0, gt=0, le=3600)
    """How long a request is held open waiting for a decision before it gets 403 `approval_pending`."""
    ttl_s: float = Field(3600.0, gt=0)
    """A pending approval nobody decided expires this long after it was requested."""
    grant_ttl_s: float = Field(600.0, ge=0)
    """After approval, the identical request from the same principal passes without a new approval for this long."""
    retry_after_s: int = Field(5, ge=1, le=3600)
    """`Retry-After` sent with `approval_pending`: a retry re-attaches to the same pending approval."""
    retention_s: float = Field(86400.0, ge=0)
    """How long decided approvals stay listable after they end (Redis keys expire after that)."""
    sweep_interval_s: float = Field(1.0, gt=0)
    """How often overdue pending approvals are marked expired (so `approval.expired` fires without a reader)."""
    redis_timeout_s: float = Field(2.0, gt=0, le=60)
    """Connect and command timeout for Redis; beyond it the store counts as unavailable (503)."""
    key_prefix: str = Field("gw:approvals:", min_length=1)
    """Prefix of every Redis key and of the pub/sub channel (several gateways may share one Redis)."""

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ApprovalSettings":
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("approvals.redis_url is required when approvals.backend is redis")
        if self.hold_s > self.ttl_s:
            raise ValueError("approvals.hold_s must not exceed approvals.ttl_s (a held request would outlive it)")
        return self
