"""Delivery against a real receiver on loopback, every request verified with `standardwebhooks`."""
import asyncio
import json
import time

import pytest

from gateway.webhooks import Dispatcher, WebhookEvent, WebhooksSettings
from tests.support import free_port
from tests.webhooks.receiver import Receiver, Reply, make_secret


def settings(url: str, secret, **kw) -> WebhooksSettings:
    endpoint = {"url": url, "secret": secret, "timeout_s": kw.pop("timeout_s", 2.0), **kw.pop("endpoint", {})}
    return WebhooksSettings.model_validate({
        "endpoints": [endpoint], "max_attempts": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.05, **kw,
    })


def event(**data) -> WebhookEvent:
    return WebhookEvent("approval.requested", {"approval_id": "apr_1", "excerpt": "mail [EMAIL]", **data})


async def test_delivers_generic_body_verified(secret, dead_letters):
    async with Receiver(secret) as rx:
        d = Dispatcher(settings(rx.url, secret), dead_letter=dead_letters)
        await d.start()
        ev = event()
        assert d.emit(ev) == 1
        await rx.wait_for(1)
        await d.stop(drain_timeout=2)
    [req] = rx.requests
    assert req.verified, req.error
    assert req.headers["webhook-id"] == ev.id
    assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 5
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body) == {"type": "approval.requested", "timestamp": ev.iso_timestamp,
                                    "data": {"approval_id": "apr_1", "excerpt": "mail [EMAIL]"}}
    assert (d.stats.delivered, d.stats.retried, d.stats.dead_lettered, d.stats.dropped) == (1, 0, 0, 0)
    assert dead_letters.calls == []


async def test_rotation_receiver_knowing_only_the_new_secret_accepts(dead_letters):
    old, new = make_secret(), make_secret()
    async with Receiver(new) as rx:
        d = Dispatcher(settings(rx.url, [old, new]), dead_letter=dead_letters)
        await d.start()
        d.emit(event())
        await rx.wait_for(1)
        await d.stop(drain_timeout=2)
    assert rx.requests[0].verified and len(rx.requests[0].headers["webhook-signature"].split()) == 2
    assert d.stats.delivered == 1


async def test_receiver_with_an_unknown_secret_refuses_and_we_dead_letter(dead_letters):
    # The negative control for the receiver itself: a wrong key is caught, so the passing tests mean something.
    async with Receiver(make_secret()) as rx:
        d = Dispatcher(settings(rx.url, make_secret()), dead_letter=dead_letters)
        await d.start()
        d.emit(event())
        await rx.wait_for(1)
        await d.stop(drain_timeout=2)
    assert not rx.requests[0].verified
    assert [c[2] for c in dead_letters.calls] == ["rejected: HTTP 401"]


async def test_500_then_200_is_retried_with_the_same_id_and_body(secret, dead_letters):
    async with Receiver(secret, [Reply(500)]) as rx:
        d = Dispatcher(settings(rx.url, secret), dead_letter=dead_letters)
        await d.start()
        ev = event()
        d.emit(ev)
        await rx.wait_for(2)
        await d.stop(drain_timeout=2)
    first, second = rx.requests
    assert first.verified and second.verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == ev.id
    assert first.body == second.body
    assert (d.stats.delivered, d.stats.retried, d.stats.dead_lettered) == (1, 1, 0)
    assert dead_letters.calls == []


async def test_429_retry_after_is_honoured(secret, dead_letters):
    async with Receiver(secret, [Reply(429, {"Retry-After": "1"})]) as rx:
        d = Dispatcher(settings(rx.url, secret), dead_letter=dead_letters)
        await d.start()
        d.emit(event())
        await rx.wait_for(2, timeout=5)
        await d.stop(drain_timeout=2)
    gap = rx.requests[1].at - rx.requests[0].at
    assert 0.95 <= gap < 1.6, gap  # backoff alone would retry within 0.05 s
    assert rx.requests[0].headers["webhook-id"] == rx.requests[1].headers["webhook-id"]
    assert d.stats.delivered == 1 and d.stats.retried == 1


async def test_retry_after_is_capped(secret):
    async with Receiver(secret, [Reply(503, {"Retry-After": "3600"})]) as rx:
        d = Dispatcher(settings(rx.url, secret, retry_after_max_s=0.2))
        await d.start()
        d.emit(event())
        await rx.wait_for(2, timeout=3)
        await d.stop(drain_timeout=2)
    assert rx.requests[1].at - rx.requests[0].at < 1.0
    assert d.stats.delivered == 1


async def test_permanent_400_is_dead_lettered_without_retry(secret, dead_letters):
    async with Receiver(secret, [Reply(400)]) as rx:
        d = Dispatcher(settings(rx.url, secret, max_attempts=5), dead_letter=dead_letters)
        await d.start()
        ev = event()
        d.emit(ev)
        await rx.wait_for(1)
        await asyncio.sleep(0.2)  # several backoff periods: a retry would have arrived by now
        await d.stop(drain_timeout=2)
    assert len(rx.requests) == 1
    assert dead_letters.calls == [(ev, "http://127.0.0.1:%d/…" % rx.port, "rejected: HTTP 400", 1)]
    assert (d.stats.delivered, d.stats.retried, d.stats.dead_lettered) == (0, 0, 1)


async def test_redirects_are_not_followed(secret, dead_letters):
    async with Receiver(secret, [Reply(302, {"Location": "http://127.0.0.1:1/elsewhere"})]) as rx:
        d = Dispatcher(settings(rx.url, secret), dead_letter=dead_letters)
        await d.start()
        d.emit(event())
        await rx.wait_for(1)
        await d.stop(drain_timeout=2)
    assert [c[2] for c in dead_letters.calls] == ["rejected: HTTP 302"]


async def test_timeout_is_retried(secret, dead_letters):
    async with Receiver(secret, [Reply(200, delay_s=1.0)]) as rx:
        d = Dispatcher(settings(rx.url, secret, timeout_s=0.2), dead_letter=dead_letters)
        await d.start()
        d.emit(event())
        await rx.wait_for(2)
        await d.stop(drain_timeout=2)
    assert d.stats.retried == 1 and d.stats.delivered == 1 and dead_letters.calls == []


async def test_unreachable_endpoint_is_dead_lettered_after_max_attempts(secret, dead_letters):
    url = f"http://127.0.0.1:{free_port()}/nobody"
    d = Dispatcher(settings(url, secret, max_attempts=4, endpoint={"name": "ops-receiver"}),
                   dead_letter=dead_letters)
    await d.start()
    ev = event()
    d.emit(ev)
    for _ in range(200):
        if dead_letters.calls:
            break
        await asyncio.sleep(0.02)
    await d.stop(drain_timeout=1)
    [(got, endpoint, reason, attempts)] = dead_letters.calls
    assert got is ev and endpoint == "ops-receiver" and attempts == 4
    assert reason.startswith("exhausted: connection error")
    assert (d.stats.retried, d.stats.dead_lettered) == (3, 1)


async def test_full_queue_drops_without_blocking(secret, dead_letters):
    async with Receiver(secret) as rx:
        d = Dispatcher(settings(rx.url, secret, queue_size=2), dead_letter=dead_letters)
        await d.start()
        events = [event(n=i) for i in range(10)]
        t0 = time.perf_counter()
        accepted = [d.emit(ev) for ev in events]  # one synchronous burst: the workers get no chance to run
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.05
        assert accepted == [1, 1] + [0] * 8
        assert d.stats.dropped == 8 and d.queued == 2
        await rx.wait_for(2)
        await d.stop(drain_timeout=2)
    assert sorted(c[2] for c in dead_letters.calls) == ["queue_full"] * 8
    assert [c[0] for c in dead_letters.calls] == events[2:] and all(c[3] == 0 for c in dead_letters.calls)
    assert d.stats.delivered == 2 and len(rx.requests) == 2


async def test_stop_dead_letters_what_could_not_drain_and_later_emits_are_dropped(secret, dead_letters):
    async with Receiver(secret, [Reply(hang=True)]) as rx:
        d = Dispatcher(settings(rx.url, secret, concurrency=1, endpoint={"timeout_s": 30}),
                       dead_letter=dead_letters)
        await d.start()
        first, second = event(n=1), event(n=2)
        d.emit(first)
        d.emit(second)
        await rx.wait_for(1)
        t0 = time.monotonic()
        await d.stop(drain_timeout=0.2)
        assert time.monotonic() - t0 < 2
        assert d.emit(event(n=3)) == 0
        await asyncio.sleep(0)
    reasons = {c[0].data["n"]: c[2] for c in dead_letters.calls}
    assert reasons == {1: "shutdown", 2: "shutdown", 3: "stopped"}
    assert d.stats.dead_lettered == 2 and d.stats.dropped == 1


async def test_events_filter_and_extra_headers(secret):
    async with Receiver(secret) as rx:
        s = settings(rx.url, secret, endpoint={"events": ["policy.denied"], "headers": {"X-Team": "sre"}})
        d = Dispatcher(s)
        await d.start()
        assert d.emit(event()) == 0
        assert d.emit(WebhookEvent("policy.denied", {"rule": "r"})) == 1
        await rx.wait_for(1)
        await d.stop(drain_timeout=2)
    assert len(rx.requests) == 1 and rx.requests[0].headers["X-Team"] == "sre"
    assert json.loads(rx.requests[0].body)["type"] == "policy.denied"


async def test_slack_and_jira_endpoints_over_http(secret):
    async with Receiver(secret) as rx:
        s = WebhooksSettings.model_validate({
            "console_url": "https://gw.example.com/admin/ui", "jira": {"project_key": "SEC"},
            "endpoints": [{"url": rx.url, "format": "slack", "secret": secret},
                          {"url": rx.url, "format": "jira", "secret": secret}],
        })
        d = Dispatcher(s)
        await d.start()
        d.emit(event())
        await rx.wait_for(2)
        await d.stop(drain_timeout=2)
    bodies = [json.loads(r.body) for r in rx.requests]
    assert all(r.verified for r in rx.requests)
    assert {"text", "blocks"} in [set(b) for b in bodies] and {"fields"} in [set(b) for b in bodies]


@pytest.mark.parametrize("bad", [{"body": "x"}, {"token": "x"}])
async def test_raw_fields_never_reach_the_queue(secret, bad):
    d = Dispatcher(settings("http://127.0.0.1:9/h", secret))
    with pytest.raises(ValueError):
        d.emit(WebhookEvent("policy.denied", bad))
    assert d.queued == 0


async def test_logs_name_the_event_never_the_url_secret_or_payload(dead_letters):
    from structlog.testing import capture_logs

    secret = make_secret()
    async with Receiver(secret, [Reply(503), Reply(400)]) as rx:
        d = Dispatcher(settings(rx.url, secret), dead_letter=dead_letters)
        with capture_logs() as logs:
            await d.start()
            ev = event()
            d.emit(ev)
            await rx.wait_for(2)
            await d.stop(drain_timeout=2)
    assert {e["event"] for e in logs} >= {"webhook_retry", "webhook_dead_letter"}
    text = repr(logs)
    assert ev.id in text and "approval.requested" in text
    for leak in (secret, "/hooks/in", "[EMAIL]", "webhook-signature"):
        assert leak not in text
