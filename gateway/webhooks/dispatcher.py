"""The delivery engine: `emit()` on the request path, workers in the background.

Each endpoint has its own bounded queue and its own workers, so a dead receiver retrying for minutes delays only its
own deliveries. `emit()` never awaits: when an endpoint's queue is full the delivery is dropped, counted, and handed
to the dead-letter callback (the app records it in the audit log), because blocking a client's request on a
notification would be worse than losing the notification. One `aiohttp.ClientSession` serves every endpoint.

Logs carry the event type and id, the endpoint's label, the attempt and a reason — never URLs, secrets or bodies.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import structlog

from gateway.webhooks.events import WebhookEvent
from gateway.webhooks.formats import render
from gateway.webhooks.retry import Outcome, backoff_delay, classify_status
from gateway.webhooks.settings import WebhookEndpoint, WebhooksSettings
from gateway.webhooks.signing import webhook_headers

__all__ = ["DeadLetter", "Dispatcher", "DispatchStats"]

DeadLetter = Callable[[WebhookEvent, str, str, int], Awaitable[None]]
"""`dead_letter(event, endpoint_url, reason, attempts)`: a delivery that will never happen.

`endpoint_url` is the endpoint's label (its `name`, else its URL reduced to scheme://host[:port], because a Slack URL
path is a credential). `reason` starts with one of `queue_full`, `stopped`, `rejected: HTTP <status>`,
`exhausted: <last reason>`, `render_error`, `shutdown`. `attempts` is 0 when the delivery never started."""

_USER_AGENT = "reasoning-gateway-webhooks/1"
_MAX_PENDING_DEAD_LETTERS = 1000
"""Drops beyond this many unfinished dead-letter callbacks are only counted: a flood must not grow tasks unbounded."""


@dataclass
class DispatchStats:
    """Monotonic counters for metrics (read them; never reset)."""

    delivered: int = 0
    retried: int = 0
    """Retries scheduled (a delivery that needed 3 attempts counts 2)."""
    dead_lettered: int = 0
    """Accepted deliveries that failed for good (permanent error, attempts exhausted, render error, shutdown)."""
    dropped: int = 0
    """Deliveries refused by `emit()` (queue full, or the dispatcher stopped)."""


@dataclass(eq=False)
class _Job:
    event: WebhookEvent
    endpoint: WebhookEndpoint
    body: bytes | None = None
    attempts: int = 0
    finished: bool = False
    """Delivered or dead-lettered: a worker cancelled after this point must not dead-letter it again."""


@dataclass(eq=False)
class _Lane:
    """One endpoint's queue and workers."""

    endpoint: WebhookEndpoint
    queue: asyncio.Queue[_Job]
    workers: list[asyncio.Task[None]] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        settings: WebhooksSettings,
        *,
        dead_letter: DeadLetter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.stats = DispatchStats()
        self._dead_letter = dead_letter
        self._rng = rng or random.Random()
        self._lanes = [_Lane(ep, asyncio.Queue(settings.queue_size)) for ep in settings.endpoints]
        self._session: aiohttp.ClientSession | None = None
        self._inflight: set[_Job] = set()
        self._callbacks: set[asyncio.Task[None]] = set()
        self._stopped = False
        # Per instance, so a logger cached by one app's structlog configuration is not shared with the next.
        self._log = structlog.get_logger("gateway.webhooks")

    @property
    def queued(self) -> int:
        """Deliveries waiting in the queues (not counting those in progress)."""
        return sum(lane.queue.qsize() for lane in self._lanes)

    # --- request path -------------------------------------------------------------------------------------

    def emit(self, event: WebhookEvent) -> int:
        """Queue `event` for every endpoint subscribed to its type, without waiting. Returns how many accepted."""
        accepted = 0
        for lane in self._lanes:
            if event.type not in lane.endpoint.events:
                continue
            job = _Job(event, lane.endpoint)
            if self._stopped:
                self._drop(job, "stopped")
                continue
            try:
                lane.queue.put_nowait(job)
            except asyncio.QueueFull:
                self._drop(job, "queue_full")
            else:
                accepted += 1
        return accepted

    def _drop(self, job: _Job, reason: str) -> None:
        self.stats.dropped += 1
        self._log.warning("webhook_dropped", event_type=job.event.type, event_id=job.event.id,
                          endpoint=job.endpoint.label, reason=reason)
        if self._dead_letter is None or len(self._callbacks) >= _MAX_PENDING_DEAD_LETTERS:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # emitted outside the loop (e.g. during set-up): nothing can await the callback
            return
        task = loop.create_task(self._call_dead_letter(job, reason))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and start `concurrency` workers per endpoint."""
        if self._session is not None:
            return
        self._stopped = False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(1, len(self._lanes) * self.settings.concurrency)),
            headers={"User-Agent": _USER_AGENT},
            trust_env=False,
        )
        for lane in self._lanes:
            lane.workers = [asyncio.create_task(self._worker(lane), name=f"webhook-{lane.endpoint.label}-{i}")
                            for i in range(self.settings.concurrency)]

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Refuse new events, give queued ones `drain_timeout` seconds to go out, then cancel the rest.

        Whatever was still queued or in progress is dead-lettered with reason `shutdown` (an in-progress one may
        in fact have arrived; the receiver deduplicates by `webhook-id` if it is ever re-sent)."""
        self._stopped = True
        workers = [t for lane in self._lanes for t in lane.workers]
        if workers:
            try:
                await asyncio.wait_for(asyncio.gather(*(lane.queue.join() for lane in self._lanes)), drain_timeout)
            except TimeoutError:
                pass
            for t in workers:
                t.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        leftovers = [job for job in self._inflight if not job.finished]
        self._inflight.clear()
        for lane in self._lanes:
            lane.workers = []
            while not lane.queue.empty():
                leftovers.append(lane.queue.get_nowait())
                lane.queue.task_done()
        for job in leftovers:
            await self._give_up(job, "shutdown")
        if self._callbacks:
            await asyncio.gather(*list(self._callbacks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- delivery -----------------------------------------------------------------------------------------

    async def _worker(self, lane: _Lane) -> None:
        while True:
            job = await lane.queue.get()
            self._inflight.add(job)
            try:
                await self._deliver(job)
                self._inflight.discard(job)
            except asyncio.CancelledError:
                raise  # stays in _inflight: stop() dead-letters it
            except Exception:  # a bug here must not kill the worker and silently stop all deliveries
                self._inflight.discard(job)
                self._log.exception("webhook_worker_error", event_type=job.event.type, event_id=job.event.id)
            finally:
                lane.queue.task_done()

    async def _deliver(self, job: _Job) -> None:
        s = self.settings
        if job.body is None:
            try:
                job.body = render(job.event, job.endpoint, s)
            except Exception as exc:
                await self._give_up(job, f"render_error ({type(exc).__name__})")
                return
        while True:
            job.attempts += 1
            outcome = await self._attempt(job)
            if outcome.delivered:
                job.finished = True
                self.stats.delivered += 1
                self._log.debug("webhook_delivered", event_type=job.event.type, event_id=job.event.id,
                                endpoint=job.endpoint.label, attempts=job.attempts)
                return
            if not outcome.retryable:
                await self._give_up(job, f"rejected: {outcome.reason}")
                return
            if job.attempts >= s.max_attempts:
                await self._give_up(job, f"exhausted: {outcome.reason}")
                return
            delay = outcome.retry_after
            if delay is None:
                delay = backoff_delay(job.attempts, s.backoff_initial_s, s.backoff_max_s, self._rng)
            self.stats.retried += 1
            self._log.info("webhook_retry", event_type=job.event.type, event_id=job.event.id,
                           endpoint=job.endpoint.label, attempt=job.attempts, reason=outcome.reason,
                           delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _attempt(self, job: _Job) -> Outcome:
        assert self._session is not None and job.body is not None
        ep = job.endpoint
        headers = {name: value.get_secret_value() for name, value in ep.headers.items()}
        headers["Content-Type"] = "application/json"
        # Re-signed on every attempt: the id stays, the timestamp is now (receivers refuse stale ones).
        headers.update(webhook_headers(ep.keys, job.event.id, int(time.time()), job.body))
        try:
            async with self._session.post(
                ep.url.get_secret_value(), data=job.body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=ep.timeout_s), allow_redirects=False,
            ) as resp:
                return classify_status(resp.status, resp.headers.get("Retry-After"),
                                       retry_after_max_s=self.settings.retry_after_max_s)
        except TimeoutError:
            return Outcome(False, True, "timeout")
        except aiohttp.ClientError as exc:
            # The type name only: aiohttp messages can contain the URL, which may be a credential.
            return Outcome(False, True, f"connection error ({type(exc).__name__})")

    async def _give_up(self, job: _Job, reason: str) -> None:
        job.finished = True
        self.stats.dead_lettered += 1
        self._log.warning("webhook_dead_letter", event_type=job.event.type, event_id=job.event.id,
                          endpoint=job.endpoint.label, attempts=job.attempts, reason=reason)
        if self._dead_letter is None:
            return
        # Shielded: stop() cancelling the worker must not cut the audit record short; stop() awaits the task.
        task = asyncio.get_running_loop().create_task(self._call_dead_letter(job, reason))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)
        await asyncio.shield(task)

    async def _call_dead_letter(self, job: _Job, reason: str) -> None:
        if self._dead_letter is None:
            return
        try:
            await self._dead_letter(job.event, job.endpoint.label, reason, job.attempts)
        except Exception:
            self._log.exception("webhook_dead_letter_failed", event_type=job.event.type, event_id=job.event.id)
