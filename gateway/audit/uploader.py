"""Ships spooled audit objects to the object store, then acknowledges them in the spool.

One background task: read up to `batch` pending entries, put them with `put_if_absent` (entries concurrently, up to
`concurrency`; the objects of one entry in order, so an index pointer never names a missing record), ack the longest
prefix of the batch that fully landed, repeat. `put_if_absent` makes re-shipping harmless (an identical object
already there counts as stored), so after a crash the spool simply ships its unacknowledged entries again — and
that is the first thing `start()` does, since the spool only holds what was not acknowledged.

Failures: `StoreUnavailable`, OSError and other `StoreError`s are retried with exponential backoff (the spool keeps
absorbing appends meanwhile, up to its `max_bytes`). `ConflictError` is an alarm — a different object already sits
at one of our keys (a second writer, or a rewritten log): it is logged at ERROR on every attempt, shown in `status()`,
and the entry is kept; nothing past it is acknowledged until an operator resolves it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from gateway.audit.spool import Entry, Spool
from gateway.audit.store import ConflictError, ObjectStore

__all__ = ["Uploader"]

log = logging.getLogger("gateway.audit.uploader")


class Uploader:
    def __init__(self, spool: Spool, store: ObjectStore, *, batch: int = 64, concurrency: int = 16,
                 retry_initial_s: float = 0.2, retry_max_s: float = 5.0) -> None:
        self.spool, self.store = spool, store
        self.batch, self.retry_initial_s, self.retry_max_s = batch, retry_initial_s, retry_max_s
        self._sem = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()  # set after every ack: `drain` waits on it instead of polling
        self._kick = asyncio.Event()  # `wake()` cuts a backoff short; appends do not (they would defeat it)
        self._streak = 0  # consecutive failures, for log throttling
        self.shipped_entries = 0
        self.shipped_objects = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.conflict_key: str | None = None
        """Set while a ConflictError blocks progress (cleared once that entry ships)."""

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start shipping (first whatever a previous run left in the spool). Idempotent."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="audit-uploader")

    def wake(self) -> None:
        """Ship now, even in the middle of a backoff (the spool wakes an idle uploader after every append)."""
        self._kick.set()
        self.spool.appended.set()

    async def stop(self) -> None:
        """Stop at once (a batch in flight is abandoned unacknowledged and ships again next time)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty (graceful shutdown: stop taking requests first). True if it drained in
        time; False leaves the rest in the spool, which the next start ships."""
        deadline = time.monotonic() + timeout
        self.wake()
        while self.spool.entries > 0:
            left = deadline - time.monotonic()
            if left <= 0 or self._task is None or self._task.done():
                return self.spool.entries == 0
            self._progress.clear()
            if self.spool.entries == 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        return True

    def status(self) -> dict[str, Any]:
        return {
            "running": self._task is not None and not self._task.done(),
            "backlog_entries": self.spool.entries,
            "backlog_bytes": self.spool.size_bytes,
            "shipped_entries": self.shipped_entries,
            "shipped_objects": self.shipped_objects,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "conflict_key": self.conflict_key,
        }

    # -- the loop -------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.retry_initial_s
        while True:
            # clear before reading: an append that lands after the read sets it again, so none is missed
            self.spool.appended.clear()
            try:
                entries = await self.spool.read(self.batch)
            except OSError as exc:
                self._failed(exc)
                await self._sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if not entries:
                await self.spool.appended.wait()
                continue
            shipped, error = await self._ship(entries)
            if shipped:
                try:
                    await self.spool.ack(shipped[-1].seq)
                except OSError as exc:  # stored but not acked: re-shipping later is harmless
                    error = error or exc
                else:
                    self.shipped_entries += len(shipped)
                    self.shipped_objects += sum(len(e.objects) for e in shipped)
                    self._progress.set()
            if error is None:
                if self._streak:
                    log.info("audit upload recovered after %d failed attempts", self._streak)
                delay, self._streak, self.conflict_key = self.retry_initial_s, 0, None
                continue
            self._failed(error)
            # a batch that made progress retries at once; only a stuck head of the spool backs off
            if not shipped:
                await self._sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def _ship(self, entries: list[Entry]) -> tuple[list[Entry], BaseException | None]:
        """Put every entry; returns the longest fully stored prefix and the first error after it (if any)."""
        failed: list[BaseException] = []  # after a failure the rest of the batch stops hammering the store
        results = await asyncio.gather(*(self._put_entry(e, failed) for e in entries), return_exceptions=True)
        for i, res in enumerate(results):
            if isinstance(res, asyncio.CancelledError):
                raise res
            if res is not None:
                return entries[:i], failed[0] if failed else res
        return entries, None

    async def _put_entry(self, entry: Entry, failed: list[BaseException]) -> BaseException | None:
        async with self._sem:
            for key, data in entry.objects:  # in order: the record before its index pointer
                if failed:
                    return failed[0]
                try:
                    await self.store.put_if_absent(key, data)
                except Exception as exc:  # noqa: BLE001 - every store failure is classified by `_failed`
                    failed.append(exc)
                    return exc
        return None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._streak += 1
        self.last_error, self.last_error_at = f"{type(exc).__name__}: {exc}", time.time()
        if isinstance(exc, ConflictError):
            self.conflict_key = exc.key
            log.error("AUDIT ALARM: a different object already exists at %s; the spool keeps the entry and "
                      "the uploader will not ship past it until this is investigated", exc.key)
        elif self._streak == 1 or self._streak % 20 == 0:  # an outage would otherwise flood the log
            log.warning("audit upload failed (attempt %d, retrying with backoff): %s", self.failures,
                        self.last_error)

    async def _sleep(self, seconds: float) -> None:
        """Back off, but not past a `wake()` — a caller that knows the store is back can cut it short."""
        self._kick.clear()
        # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation (stop() would then hang)
        waiter = asyncio.ensure_future(self._kick.wait())
        try:
            await asyncio.wait({waiter}, timeout=seconds)
        finally:
            waiter.cancel()
