"""Chaining records: one writer stream per gateway process, and per-session heads shared across streams.

Each record carries two links, both inside its hashed bytes:

- stream: `stream_seq` (1, 2, 3 ... in this process's stream) and `prev` (the stream's previous record hash);
- session: `session_seq` and `session_prev` (the previous record *of its session*, whichever stream wrote it).

The session head is the one piece of shared state. It lives behind `SessionHeads` (in memory here; Redis when
replicas share sessions). Because a record's hash covers its own session link, the head cannot be advanced with a
hash computed beforehand: `SessionHeads.next` is handed a pure *seal* function and must, atomically, read the head,
call ``seal(session_seq, session_prev)`` to get the new record's hash, and store that as the new head. A Redis
implementation does this optimistically (read, seal, compare-and-set in a Lua script, retry on a lost race —
`seal` is pure, so calling it again is harmless); the in-memory one has no await between read and write.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.audit import layout
from gateway.audit.record import Record, RecordBody
from gateway.audit.segment import catalog_pointers, parse_pointer_body, segment_objects
from gateway.audit.store import ObjectStore

Head = tuple[int, str]
"""A session head: (session_seq, hash) of the session's latest record."""
Seal = Callable[[int, "str | None"], str]
"""Given (session_seq, session_prev) for a new record, build it and return its hash."""


class SessionHeads(Protocol):
    """Per-session chain heads, shared by every writer that may write the session."""

    async def next(self, session_id: str, seal: Seal) -> tuple[int, str | None]:
        """Atomically: read the head (None → seq 1, prev None), call `seal(seq, prev)`, make its result the head.
        Returns the (session_seq, session_prev) that `seal` was last called with."""
        ...


HeadLoader = Callable[[str], Awaitable["Head | None"]]


class MemorySessionHeads:
    """Heads in a dict, for one process. With `recover`, a session not seen since start is looked up once (e.g.
    `store_head_loader(store)`), so a restarted gateway continues an existing session's chain instead of forking it.

    `declare_new(session_id)` skips that lookup for a session the gateway itself just created (an id it assigned
    cannot have history). At most `max_sessions` heads are kept (least recently used go first); an evicted session
    is looked up again if it comes back — by then its records are normally long stored.
    """

    def __init__(self, recover: HeadLoader | None = None, *, max_sessions: int = 200_000) -> None:
        self._heads: OrderedDict[str, Head] = OrderedDict()
        self._recover = recover
        self._loading: dict[str, asyncio.Lock] = {}
        self._new: set[str] = set()
        self.max_sessions = max_sessions

    def declare_new(self, session_id: str) -> None:
        self._new.add(session_id)

    async def next(self, session_id: str, seal: Seal) -> tuple[int, str | None]:
        if session_id in self._new:
            self._new.discard(session_id)
        elif session_id not in self._heads and self._recover is not None:
            lock = self._loading.setdefault(session_id, asyncio.Lock())
            async with lock:
                if session_id not in self._heads:
                    head = await self._recover(session_id)
                    if head is not None:
                        self._heads[session_id] = head
            self._loading.pop(session_id, None)
        # no await from here on: read, seal and write are one step for every other coroutine
        head = self._heads.get(session_id)
        seq, prev = (head[0] + 1, head[1]) if head else (1, None)
        self._heads[session_id] = (seq, seal(seq, prev))
        self._heads.move_to_end(session_id)
        if len(self._heads) > self.max_sessions:
            self._heads.popitem(last=False)
        return seq, prev

    def head(self, session_id: str) -> Head | None:
        return self._heads.get(session_id)


def store_head_loader(store: ObjectStore) -> HeadLoader:
    """Find a session's head from the store's session index: the last entry of its last pointer. Pointers list in
    session order of their first entry, so this is the head when one writer at a time continues a session — the
    case of in-memory heads this loader serves (replicas sharing sessions share heads in Redis instead; their
    pointers may interleave, e.g. 1,3,5 | 2,4, and the head could then sit in an earlier pointer)."""
    async def load(session_id: str) -> Head | None:
        prefix = layout.session_prefix(session_id)
        last: str | None = None
        after: str | None = None
        while keys := await store.list(prefix, start_after=after):
            last = after = keys[-1]
        if last is None:  # a gateway-assigned session may so far live only in its catalog entry
            entries = [e for p in await catalog_pointers(store, session_id) for e in p.entries or []]
            if not entries:
                return None
            session_seq, _, record_hash = max(entries)
            return session_seq, record_hash
        entries = parse_pointer_body(await store.get(last))
        if layout.parse_session_index_key(last) is None or not entries:
            return None
        session_seq, _, record_hash = max(entries)
        return session_seq, record_hash
    return load


def new_stream_id() -> str:
    """`<UTC start time>-<random>`: sortable by start, unique without coordination."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(6).hex()


class StreamChain:
    """Assigns the links of one writer stream. Appends are serialized (each needs the previous hash)."""

    def __init__(self, heads: SessionHeads, stream_id: str | None = None) -> None:
        self.stream_id = layout.check_stream_id(stream_id or new_stream_id())
        """This process's writer stream."""
        self.heads = heads
        self.last_seq = 0
        """stream_seq of the latest record (0 before the first)."""
        self.last_hash: str | None = None
        """hash of the latest record."""
        self.touched: dict[str, Head] = {}
        """Sessions written since the last digest: session_id → (session_seq, hash) of our latest record there."""
        self._lock = asyncio.Lock()

    async def append(self, body: RecordBody) -> Record:
        """Seal `body` as this stream's next record (links + hash). The caller spools it (`spool_entry`)."""
        async with self._lock:
            seq, prev = self.last_seq + 1, self.last_hash
            sealed: list[Record] = []

            def seal(session_seq: int, session_prev: str | None) -> str:
                sealed.append(Record.seal(body, stream_id=self.stream_id, stream_seq=seq, prev=prev,
                                          session_seq=session_seq, session_prev=session_prev))
                return sealed[-1].hash

            session_seq, session_prev = await self.heads.next(body.session_id, seal)
            record = sealed[-1]
            assert (record.session_seq, record.session_prev) == (session_seq, session_prev)
            self.last_seq, self.last_hash = seq, record.hash
            self.touched[record.session_id] = (session_seq, record.hash)
            return record

    def take_touched(self) -> dict[str, Head]:
        """The sessions touched since the last call (for the next digest), and reset."""
        touched, self.touched = self.touched, {}
        return touched


def spool_entry(record: Record) -> list[tuple[str, bytes]]:
    """What the spool holds for `record` (the uploader packs consecutive ones into segments, `segment.py`)."""
    return [(layout.spool_record_name(record.stream_id, record.stream_seq), record.to_bytes())]


async def write_records(store: ObjectStore, records: list[Record]) -> None:
    """Store consecutive records of one stream as one segment, then its index objects (what the uploader does)."""
    objects = segment_objects([r.to_bytes() for r in records])
    await store.put_if_absent(*objects[0])
    for key, data in objects[1:]:
        await store.put_if_absent(key, data)


async def write_record(store: ObjectStore, record: Record) -> None:
    """Store `record` alone in a segment (tests; the uploader batches)."""
    await write_records(store, [record])
