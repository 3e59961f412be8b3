"""Classification, Retry-After parsing and full-jitter backoff."""
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from gateway.webhooks.retry import backoff_delay, classify_status, parse_retry_after


@pytest.mark.parametrize("status, delivered, retryable", [
    (200, True, False), (204, True, False),
    (500, False, True), (502, False, True), (503, False, True), (408, False, True), (429, False, True),
    (400, False, False), (401, False, False), (404, False, False), (410, False, False), (302, False, False),
])
def test_classify(status, delivered, retryable):
    o = classify_status(status, None, retry_after_max_s=60)
    assert (o.delivered, o.retryable) == (delivered, retryable)
    assert o.reason == f"HTTP {status}"


def test_retry_after_seconds_and_date_capped_and_only_for_429_503():
    assert classify_status(429, "7", retry_after_max_s=60).retry_after == 7
    assert classify_status(503, "7", retry_after_max_s=5).retry_after == 5
    assert classify_status(500, "7", retry_after_max_s=60).retry_after is None
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_full_jitter_stays_under_the_exponential_ceiling():
    rng = random.Random(1)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 8.0), (500, 8.0)]:
        delays = [backoff_delay(retry, 0.5, 8.0, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # actually spread over the range, not a fixed delay
