"""The in-flight journal: what `durability: strict` keeps of exchanges whose record is not sealed yet.

An exchange's record is sealed (chained, hashed) only when its response is over, because the record holds the
whole response. Strict durability wants more: the request on disk *before* it is forwarded, and a stream cut by a
crash kept up to what was spooled. So, for every exchange in flight, the journal holds

- ``j/<request_id>/begin``: the record body so far (ids, principal, decision, masked request) — appended and
  fsynced before the request is forwarded;
- ``j/<request_id>/p<n>``: the masked response chunks sent since the previous one (every `journal_interval_s`
  while a response streams; best effort, group-committed, never awaited by the response path).

The journal is a `Spool` of its own (same frames, fsync and group commit); nothing in it is ever uploaded. Once an
exchange's record is in the record spool it is *closed*; the journal's ack position moves up to just before the
oldest exchange still open, which deletes finished segments. After a crash, `recover()` returns every exchange
that was still open, with its chunks, so the service can seal a record for it (`incomplete`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.spool import Spool

log = logging.getLogger("gateway.audit.journal")


@dataclass
class OpenExchange:
    """An exchange found open in the journal at start-up."""

    request_id: str
    begin: dict[str, Any]
    """The record body fields known before forwarding."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Masked response chunks journaled before the process stopped, in order."""
    response: dict[str, Any] = field(default_factory=dict)
    """Response facts journaled with the chunks (status, content type)."""


class Journal:
    def __init__(self, directory: str, *, max_bytes: int, fsync: bool = True) -> None:
        self.spool = Spool(directory, max_bytes=max_bytes, fsync=fsync, cache_bytes=0)  # never read back while running
        self._open: dict[str, int | None] = {}
        """request id → seq of its begin entry (None while that append is in flight)."""
        self._parts: dict[str, int] = {}
        self._done = self.spool.last_seq
        """Highest seq known to be written (an ack never passes an entry whose append has not returned)."""
        self._ack_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def begin(self, request_id: str, fields: dict[str, Any]) -> None:
        """Journal the request part and wait until it is fsynced. Raises `SpoolFull` / OSError."""
        self._open[request_id] = None
        try:
            seq = await self.spool.append([(f"j/{request_id}/begin", canonical_bytes(fields))])
        except BaseException:
            self._open.pop(request_id, None)
            raise
        self._done = max(self._done, seq)
        if request_id in self._open:
            self._open[request_id] = seq

    def progress(self, request_id: str, events: list[dict[str, Any]], response: dict[str, Any]) -> None:
        """Journal more response chunks in the background (best effort: a failure only loses crash coverage)."""
        if request_id not in self._open or not events:
            return
        n = self._parts.get(request_id, 0) + 1
        self._parts[request_id] = n
        data = canonical_bytes({"events": events, "response": response})
        task = asyncio.ensure_future(self.spool.append([(f"j/{request_id}/p{n}", data)]))
        self._tasks.add(task)
        task.add_done_callback(self._progress_done)

    def _progress_done(self, task: asyncio.Task[int]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning("journal progress not written: %s", type(exc).__name__)
        else:
            self._done = max(self._done, task.result())

    def end(self, request_id: str) -> None:
        """The exchange's record is in the record spool: its journal entries may go."""
        self._open.pop(request_id, None)
        self._parts.pop(request_id, None)
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.ensure_future(self._ack_soon())

    async def _ack_soon(self) -> None:
        await asyncio.sleep(0.05)  # one ack (an fsync of a tiny file) per burst of finished exchanges
        pending = [seq for seq in self._open.values() if seq is not None]
        upto = min(pending) - 1 if pending else self._done
        if upto > self.spool.acked:
            try:
                await self.spool.ack(upto)
            except OSError as exc:
                log.warning("journal ack failed: %s", exc)

    def recover(self) -> list[OpenExchange]:
        """Exchanges left open by a previous process (call once, at start-up, before `begin`)."""
        found: dict[str, OpenExchange] = {}
        for entry in self.spool.pending():
            for key, data in entry.objects:
                parts = key.split("/")
                if len(parts) != 3 or parts[0] != "j":
                    continue
                rid, what = parts[1], parts[2]
                try:
                    obj = decode(data)
                except ValueError:
                    continue
                if what == "begin":
                    found[rid] = OpenExchange(rid, obj)
                elif rid in found:  # progress of an exchange whose begin was acked belongs to a closed one
                    found[rid].events.extend(obj.get("events", []))
                    found[rid].response.update(obj.get("response", {}))
        return list(found.values())

    async def forget_recovered(self) -> None:
        """The recovered exchanges are sealed: drop everything the previous process journaled."""
        self._done = self.spool.last_seq
        if self.spool.last_seq > self.spool.acked:
            await self.spool.ack(self.spool.last_seq)

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        if self._ack_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._ack_task
        await self.spool.close()
