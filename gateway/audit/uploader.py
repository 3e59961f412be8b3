"""Ships the record spool to the object store as segments, then acknowledges the records in the spool.

The spool holds one entry per record (`chain.spool_entry`: one object named `layout.spool_record_name(stream_id,
stream_seq)` whose data is the record's canonical bytes). One background task repeats:

1. Read pending entries: at most 4 × `batch`, and fewer when records are large (about 4 × `MAX_SEGMENT_BYTES`
   per read, judged by the previous read's average entry size).
2. Cut them into units, one segment each (consecutive records of one stream): `SegmentBuilder(batch)` decides
   where a segment ends (another stream, a gap, `batch` records, `MAX_SEGMENT_BYTES`), except
   where a range is already *planned* (below), which is taken exactly as planned. When the read was full, a last
   unit that only the end of the read cut short waits for the next round, where it can grow.
3. Ship the units concurrently: per unit, PUT the segment (`put_if_absent`), then its index objects
   (`segment.index_objects`) concurrently, so a pointer never names a missing segment. Every PUT shares
   `concurrency`. After a failure, units behind the failed one stop early; units ahead of it finish.
4. Ack (`spool.ack`) the spool position of the longest prefix of units fully stored; repeat.

Deterministic boundaries: every unit, once cut, is a plan — (stream, first, last) kept in memory until its
records are acknowledged — and later rounds cut those records exactly the same way. Without that, a PUT that
landed but reported a failure, followed by a retry over more records, would store two overlapping segments (the
verifier reports their records twice). `put_if_absent` makes re-putting a planned segment harmless.

Crash resume: plans do not survive the process, so the first time the uploader meets a stream in the spool, it
lists that stream's stored segments from `layout.segment_search_start(stream, first pending seq)` until they start
beyond what the spool can hold of it. A stored segment `[f..l]`:
- `f >= a` (a = the stream's first pending record): becomes the plan for `f..l` (a re-put of identical bytes
  succeeds; different bytes raise `ConflictError`, the alarm below).
- `f < a <= l`: the spool no longer holds `f..a-1` (its ack was lost in a crash but the spool files of those
  records were deleted). The unit GETs the segment, checks that the spooled records `a..l` are byte-identical to
  the stored ones (else `ConflictError` naming the segment), re-puts the index objects derived from the *stored*
  segment's records (idempotent: they may not all have landed) and acks `a..l`.

Failures: `StoreUnavailable`, OSError and other `StoreError`s are retried with exponential backoff (the spool keeps
absorbing appends meanwhile, up to its `max_bytes`); a round that acknowledged something retries at once.
`ConflictError` is an alarm — a different object already sits at one of our keys (a second writer, or a rewritten
log): it is logged at ERROR on every attempt, shown in `status()` (`conflict_key`), and nothing past it is
acknowledged until an operator resolves it. So is `SpoolEntryError`, an entry that is not a record this uploader
can ship (`blocked_entry`), e.g. one spooled by an older gateway in another format.

`status()` counts `shipped_entries` (records acknowledged), `shipped_objects` (the PUTs that stored them, so
`shipped_objects / shipped_entries` is PUTs per record) and `shipped_segments`.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.audit import layout
from gateway.audit.segment import (
    MAX_SEGMENT_BYTES,
    Meta,
    SegmentBuilder,
    index_objects,
    meta_of,
    segment_objects,
    unpack,
)
from gateway.audit.spool import Entry, Spool
from gateway.audit.store import ConflictError, ObjectStore, StoreError

__all__ = ["SpoolEntryError", "Uploader"]

log = logging.getLogger("gateway.audit.uploader")

_READ_SEGMENTS = 4
"""A read takes up to this many segments' worth of entries (by count and by bytes)."""
_LIST_PAGE = 1000


class SpoolEntryError(Exception):
    """A spool entry the uploader cannot ship: not one record named as a spool record, or not the record a planned
    segment needs there. An alarm, like `ConflictError`: the entry stays in the spool."""

    def __init__(self, seq: int, why: str) -> None:
        super().__init__(f"spool entry {seq}: {why}")
        self.seq = seq


class _Stopped(Exception):
    """A unit gave up because a unit ahead of it failed (the round's error is that one's)."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A fixed segment range, keyed in `Uploader._plans` by (stream, first record the spool holds)."""

    last: int
    stored_first: int | None = None
    """Crash resume: a stored segment that starts at this earlier record (the spool lost the ones before)."""


@dataclass
class _Unit:
    """Consecutive spooled records of one stream that become (or complete) one stored segment."""

    stored_first: int | None = None
    entries: list[Entry] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    metas: list[Meta] = field(default_factory=list)
    puts: int = 0
    """PUTs this unit made (counted once it is acknowledged)."""

    def add(self, entry: Entry, raw: bytes, meta: Meta) -> None:
        self.entries.append(entry)
        self.records.append(raw)
        self.metas.append(meta)

    @property
    def plan_key(self) -> tuple[str, int]:
        return self.metas[0].stream_id, self.metas[0].stream_seq

    @property
    def plan(self) -> _Plan:
        return _Plan(self.metas[-1].stream_seq, self.stored_first)

    @property
    def segment_key(self) -> str:
        first = self.stored_first if self.stored_first is not None else self.metas[0].stream_seq
        return layout.segment_key(self.metas[0].stream_id, first, self.metas[-1].stream_seq)


def _parse(entry: Entry) -> tuple[bytes, Meta]:
    """The record a spool entry holds; SpoolEntryError unless it is exactly one well-named, parseable record."""
    if len(entry.objects) != 1:
        raise SpoolEntryError(entry.seq, f"{len(entry.objects)} objects, a record entry holds one")
    name, raw = entry.objects[0]
    named = layout.parse_spool_record_name(name)
    if named is None:
        raise SpoolEntryError(entry.seq, f"{name!r} is not a spooled record's name")
    try:
        meta = meta_of(raw)
    except ValueError as exc:
        raise SpoolEntryError(entry.seq, f"{name}: {exc}") from None
    if (meta.stream_id, meta.stream_seq) != named:
        raise SpoolEntryError(entry.seq, f"{name} holds record {meta.stream_seq} of stream {meta.stream_id!r}")
    if b"\n" in raw:
        raise SpoolEntryError(entry.seq, f"{name}: not canonical JSON (holds a newline)")
    return raw, meta


class Uploader:
    def __init__(self, spool: Spool, store: ObjectStore, *, batch: int = 500, concurrency: int = 16,
                 retry_initial_s: float = 0.2, retry_max_s: float = 5.0) -> None:
        self.spool, self.store = spool, store
        self.batch = min(batch, layout.MAX_SEGMENT_RECORDS)
        """Most records per segment."""
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self._sem = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()  # set after every ack: `drain` waits on it instead of polling
        self._kick = asyncio.Event()  # `wake()` cuts a backoff short; appends do not (they would defeat it)
        self._streak = 0  # consecutive failures, for log throttling
        self._plans: dict[tuple[str, int], _Plan] = {}
        self._streams: set[str] = set()  # streams whose stored segments were looked up (crash resume)
        self._entry_bytes = 0  # average size of the entries read so far (bounds a read's bytes)
        self.shipped_entries = 0
        """Records acknowledged (one spool entry each)."""
        self.shipped_objects = 0
        """PUTs that stored them (segments and index objects): `shipped_objects / shipped_entries` is PUTs per
        record."""
        self.shipped_segments = 0
        """Segments acknowledged (a resumed one that a previous process had stored included)."""
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.conflict_key: str | None = None
        """Set while a ConflictError blocks progress (cleared once a round ships without error)."""
        self.blocked_entry: int | None = None
        """Spool seq of an entry that cannot be shipped (`SpoolEntryError`), while it blocks progress."""

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
        """Stop at once (units in flight are abandoned unacknowledged; their plans stay, so a later `start` of
        this uploader ships the same segments)."""
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
            "shipped_segments": self.shipped_segments,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "conflict_key": self.conflict_key,
            "blocked_entry": self.blocked_entry,
        }

    # -- the loop -------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.retry_initial_s
        while True:
            # clear before reading: an append that lands after the read sets it again, so none is missed
            self.spool.appended.clear()
            try:
                units, error = await self._next_units()
            except Exception as exc:  # noqa: BLE001 - spool read or segment listing failed: retried
                self._failed(exc)
                await self._sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if not units and error is None:
                await self.spool.appended.wait()
                continue
            done, ship_error = await self._ship(units)
            error = ship_error or error  # the unit that failed comes before the entry the cut stopped at
            if done:
                try:
                    await self.spool.ack(units[done - 1].entries[-1].seq)
                except OSError as exc:  # stored but not acked: the plans stay, re-shipping is harmless
                    error = error or exc
                    done = 0
                else:
                    for unit in units[:done]:
                        self._plans.pop(unit.plan_key, None)
                        self.shipped_entries += len(unit.entries)
                        self.shipped_objects += unit.puts
                    self.shipped_segments += done
                    self._progress.set()
            if error is None:
                if self._streak:
                    log.info("audit upload recovered after %d failed attempts", self._streak)
                delay, self._streak, self.conflict_key, self.blocked_entry = self.retry_initial_s, 0, None, None
                continue
            self._failed(error)
            # a round that made progress retries at once; only a stuck head of the spool backs off
            if not done:
                await self._sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    # -- reading and cutting --------------------------------------------------------------------------------
    def _read_limit(self) -> int:
        limit = _READ_SEGMENTS * self.batch
        if self._entry_bytes:
            limit = min(limit, _READ_SEGMENTS * MAX_SEGMENT_BYTES // self._entry_bytes)
        return max(limit, 1)

    async def _next_units(self) -> tuple[list[_Unit], BaseException | None]:
        """The units to ship this round (each registered as a plan), and an error that stops the round after them."""
        limit = self._read_limit()
        while True:
            entries = await self.spool.read(limit)
            if entries:
                self._entry_bytes = max(1, sum(e.size for e in entries) // len(entries))
            parsed: list[tuple[Entry, bytes, Meta]] = []
            blocked: SpoolEntryError | None = None
            for entry in entries:
                try:
                    raw, meta = _parse(entry)
                except SpoolEntryError as exc:
                    # Not a record we can ship: skipping it would lose whatever it holds without a trace, and
                    # acknowledging past it would delete it with the spool file. It stays, as a conflict does:
                    # the records before it ship, nothing after it does, and the alarm repeats until an operator
                    # deals with the spool.
                    blocked = exc
                    break
                parsed.append((entry, raw, meta))
            await self._resume_streams(parsed)
            units, need, error = self._cut(parsed, more=len(entries) >= limit and blocked is None,
                                          blocked=blocked is not None)
            if need > limit:  # the head is a planned segment longer than this read: read that much
                limit = need
                continue
            for unit in units:
                self._plans.setdefault(unit.plan_key, unit.plan)
            return units, error or blocked

    def _cut(self, parsed: list[tuple[Entry, bytes, Meta]], *, more: bool, blocked: bool
             ) -> tuple[list[_Unit], int, SpoolEntryError | None]:
        """Split parsed entries into units: planned ranges exactly, the rest by `SegmentBuilder`. `more`: the read
        was full, so entries may follow; `blocked`: an unshippable entry follows. Returns (units, how many entries
        to read when the first unit is a plan longer than the read, else 0, an error where cutting stopped)."""
        units: list[_Unit] = []
        builder: SegmentBuilder | None = None
        open_: _Unit | None = None  # the unit the builder fills
        i = 0
        while i < len(parsed):
            entry, raw, meta = parsed[i]
            plan = self._plans.get((meta.stream_id, meta.stream_seq))
            if plan is None:
                if open_ is None or builder is None or not builder.fits(meta):
                    if open_ is not None:
                        units.append(open_)
                    builder, open_ = SegmentBuilder(self.batch), _Unit()
                builder.add(meta)
                open_.add(entry, raw, meta)
                i += 1
                continue
            if open_ is not None:
                units.append(open_)
                builder = open_ = None
            size = plan.last - meta.stream_seq + 1
            if i + size > len(parsed):
                if more:  # the rest of the planned range follows in the spool
                    return units, (0 if units else size), None
                if blocked:  # the entry the read stopped at is the round's error
                    return units, 0, None
                # the spool holds no more records, yet a stored segment (crash resume) needs them
                return units, 0, SpoolEntryError(entry.seq, f"the spool ends before record {plan.last} of the "
                                                 f"stored segment {meta.stream_id}/{meta.stream_seq}..{plan.last}")
            unit = _Unit(plan.stored_first)
            for j, (e, r, m) in enumerate(parsed[i:i + size]):
                if (m.stream_id, m.stream_seq) != (meta.stream_id, meta.stream_seq + j):
                    return units, 0, SpoolEntryError(e.seq, f"holds {m.stream_id}/{m.stream_seq} where the "
                                                     f"planned segment needs {meta.stream_id}/{meta.stream_seq + j}")
                unit.add(e, r, m)
            units.append(unit)
            i += size
        if open_ is not None:
            # cut by nothing but the end of a full read: the next round may fill it further
            held = more and units and len(open_.metas) < self.batch
            if not held:
                units.append(open_)
        return units, 0, None

    async def _resume_streams(self, parsed: list[tuple[Entry, bytes, Meta]]) -> None:
        """Plan the ranges of stored segments of streams met for the first time (see the module docstring)."""
        firsts: dict[str, int] = {}
        for _, _, meta in parsed:
            if meta.stream_id not in self._streams:
                firsts.setdefault(meta.stream_id, meta.stream_seq)
        for stream_id, first in firsts.items():
            # the stream's pending records are consecutive and among the spool's pending entries
            horizon = first + max(self.spool.entries, len(parsed)) - 1
            prefix = layout.segment_prefix(stream_id)
            after: str | None = layout.segment_search_start(stream_id, first)
            plans: dict[tuple[str, int], _Plan] = {}
            while after is not None:
                keys = await self.store.list(prefix, start_after=after, limit=_LIST_PAGE)
                after = keys[-1] if len(keys) == _LIST_PAGE else None
                for key in keys:
                    parsed_key = layout.parse_segment_key(key)
                    if parsed_key is None or parsed_key[0] != stream_id:
                        continue
                    _, f, last = parsed_key
                    if f > horizon:
                        after = None
                        break
                    if last < first:
                        continue
                    plans[(stream_id, max(f, first))] = _Plan(last, f if f < first else None)
            for key, plan in plans.items():
                self._plans.setdefault(key, plan)
            self._streams.add(stream_id)
            if plans:
                log.info("audit upload resumes stream %s: %d segment(s) already stored from %d on", stream_id,
                         len(plans), first)

    # -- shipping -------------------------------------------------------------------------------------------
    async def _ship(self, units: list[_Unit]) -> tuple[int, BaseException | None]:
        """Store every unit; returns how many lead the list fully stored, and the error that stopped the next."""
        first_failed = [len(units)]  # units behind a failed one stop early; the ones ahead of it go on
        results = await asyncio.gather(*(self._ship_unit(i, u, first_failed) for i, u in enumerate(units)),
                                       return_exceptions=True)
        for i, res in enumerate(results):
            if isinstance(res, asyncio.CancelledError):
                raise res
            if isinstance(res, BaseException):
                return i, res  # never _Stopped: a unit stops only behind an earlier failure
        return len(units), None

    async def _ship_unit(self, index: int, unit: _Unit, first_failed: list[int]) -> None:
        try:
            if unit.stored_first is None:
                objects = segment_objects(unit.records, unit.metas)
                await self._put(index, first_failed, *objects[0])  # the segment before anything naming it
                index_objs = objects[1:]
                unit.puts = 1
            else:
                index_objs = await self._stored_index(unit)
                unit.puts = 0
            results = await asyncio.gather(*(self._put(index, first_failed, k, d) for k, d in index_objs),
                                           return_exceptions=True)
            for res in results:
                if isinstance(res, BaseException):
                    raise res
            unit.puts += len(index_objs)
        except _Stopped:
            raise
        except Exception:
            first_failed[0] = min(first_failed[0], index)
            raise

    async def _put(self, index: int, first_failed: list[int], key: str, data: bytes) -> None:
        async with self._sem:
            if index > first_failed[0]:  # do not hammer a failing store with the rest of the round
                raise _Stopped
            await self.store.put_if_absent(key, data)

    async def _stored_index(self, unit: _Unit) -> list[tuple[str, bytes]]:
        """Crash resume, a stored segment starting before the spool's records: check it holds exactly our records
        where they overlap, and return the index objects of all its records."""
        key, first = unit.segment_key, unit.stored_first
        assert first is not None
        async with self._sem:
            body = await self.store.get(key)
        if body is None:
            raise StoreError(f"{key} was listed but cannot be read")
        try:
            stored = unpack(body)
            metas = [meta_of(r) for r in stored]
        except ValueError:
            raise ConflictError(key) from None
        sid, last = unit.metas[0].stream_id, unit.metas[-1].stream_seq
        if (len(stored) != last - first + 1 or stored[len(stored) - len(unit.records):] != unit.records
                or any((m.stream_id, m.stream_seq) != (sid, first + i) for i, m in enumerate(metas))):
            raise ConflictError(key)
        return index_objects(metas)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._streak += 1
        self.last_error, self.last_error_at = f"{type(exc).__name__}: {exc}", time.time()
        if isinstance(exc, ConflictError):
            self.conflict_key = exc.key
            log.error("AUDIT ALARM: a different object already exists at %s; the spool keeps its records and "
                      "the uploader will not ship past them until this is investigated", exc.key)
        elif isinstance(exc, SpoolEntryError):
            self.blocked_entry = exc.seq
            log.error("AUDIT ALARM: %s; the spool keeps the entry and the uploader will not ship past it until "
                      "this is investigated", exc)
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
