"""Which outcomes are retried, and how long to wait.

- 2xx: delivered.
- 408, 429, 5xx, connection errors and timeouts: transient, retried. On 429 and 503 the receiver's `Retry-After`
  (delta seconds or an HTTP date) is honoured, capped so a hostile or broken receiver cannot park a worker for days.
- Anything else (other 4xx, 3xx — redirects are not followed, the signature was made for this URL): permanent,
  the endpoint's configuration or the payload is wrong and repeating it would fail the same way.
- Otherwise exponential backoff with *full jitter* (uniform in [0, min(cap, initial * 2^(n-1))]): many gateway
  replicas retrying one recovering receiver spread out instead of arriving in lock-step.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["Outcome", "backoff_delay", "classify_status", "parse_retry_after"]


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retryable: bool
    reason: str
    """Short, secret-free description (`HTTP 503`, `timeout`, `connection error (ClientConnectorError)`)."""
    retry_after: float | None = None
    """Seconds the receiver asked us to wait, already capped; None: use backoff."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now (>= 0), or None when absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def classify_status(status: int, retry_after: str | None, *, retry_after_max_s: float) -> Outcome:
    reason = f"HTTP {status}"
    if 200 <= status < 300:
        return Outcome(True, False, reason)
    if status in (408, 429) or status >= 500:
        wait = parse_retry_after(retry_after) if status in (429, 503) else None
        return Outcome(False, True, reason, None if wait is None else min(wait, retry_after_max_s))
    return Outcome(False, False, reason)


def backoff_delay(retry: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Delay before retry number `retry` (1 = the first retry), full jitter."""
    ceiling = min(maximum, initial * 2 ** min(retry - 1, 62))
    return (rng or random).uniform(0.0, ceiling)
