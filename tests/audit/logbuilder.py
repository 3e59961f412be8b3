"""Build a realistic audit log (several sessions over two writer streams, periodic digests) and tamper with it.

Records are stored as the uploader stores them: multi-record segments (`chain.write_records`), cut every few
records and before each digest, so a log holds segments of 1..`segment_records` records. `Log.where(rec)` is how the
verifier names a record's line (`<segment key>#<stream_seq>`); `Log.segment_of(rec)` gives its segment and line;
`read_record` / `set_record` / `rewrite_record` edit one line in place (the segment key unchanged)."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import layout
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.chain import (
    MemorySessionHeads,
    SessionHeads,
    StreamChain,
    write_records,
)
from gateway.audit.digest import DigestWriter, generate_key
from gateway.audit.record import (
    Approval,
    Decision,
    MaskedEvent,
    PrincipalInfo,
    Record,
    RecordBody,
    hash_of,
)
from gateway.audit.segment import SegmentBuilder, index_objects, meta_of, pack, unpack
from gateway.audit.store import FileStore, MemoryStore, ObjectStore

STREAM_A, STREAM_B = "20250101T000000Z-aaaaaaaaaaaa", "20250101T000001Z-bbbbbbbbbbbb"
SESSIONS = ("s-alpha", "bob@corp:7", "s-gamma", "s-delta")


def body(i: int, session_id: str, *, events: int = 3) -> RecordBody:
    return RecordBody(
        record_id=f"rec-{i:05d}", request_id=f"req-{i:05d}", session_id=session_id,
        time=f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        principal=PrincipalInfo(sub="alice", groups=["eng", "ml"], client_id="cli", token_id_hash="ab" * 16),
        route="/v1/chat/completions", method="POST", dialect="openai",
        decision=Decision(action="allow", rule="default-allow" if i % 3 else None),
        approval=Approval(approval_id=f"ap-{i}", state="approved", deciders=["carol"]) if i % 5 == 0 else None,
        masked_request='{"messages":[{"role":"user","content":"key [MASKED:aws_key] é ✓ \\n"}]}',
        response_status=200, response_content_type="text/event-stream",
        masked_response=[MaskedEvent(t_ms=7 * k, data=f'data: {{"n":{k},"i":{i}}}\n\n') for k in range(events)],
        masking_counts={"aws_access_key": 1, "email": i % 2},
        timings_us={"upstream_headers": 1500 + i, "total": 90000 + i},
    )


@dataclass
class Log:
    store: ObjectStore
    key: Ed25519PrivateKey
    chains: list[StreamChain]
    writers: list[DigestWriter]
    records: list[Record] = field(default_factory=list)
    segments: dict[str, list[Record]] = field(default_factory=dict)
    """Segment key → its records, in the order written."""
    _pending: dict[int, tuple[SegmentBuilder, list[Record]]] = field(default_factory=dict)
    _located: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    @property
    def anchors(self) -> list[dict[str, Any]]:
        """The latest digest of each stream, as held outside the store."""
        return [w.latest for w in self.writers if w.latest]

    @property
    def public_keys(self) -> list:
        return [self.key.public_key()]

    def of(self, stream: str) -> list[Record]:
        return [r for r in self.records if r.stream_id == stream]

    def segments_of(self, stream: str) -> list[str]:
        """The keys of `stream`'s segments, in order."""
        return sorted(k for k in self.segments if k.startswith(layout.segment_prefix(stream)))

    def segment_of(self, rec: Record) -> tuple[str, int]:
        """(segment key, line index) where `rec` was stored."""
        return self._located[rec.stream_id, rec.stream_seq]

    def where(self, rec: Record) -> str:
        """How the verifier names `rec`'s line: `<segment key>#<stream_seq>`."""
        return f"{self.segment_of(rec)[0]}#{rec.stream_seq}"

    def index_objects(self, segment: str) -> list[tuple[str, bytes]]:
        """The pointers and catalog object written for `segment`."""
        return index_objects([meta_of(r.to_bytes()) for r in self.segments[segment]])

    def pointer_key(self, rec: Record) -> str:
        """The session index pointer naming `rec`'s segment for `rec`'s session."""
        key, _ = self.segment_of(rec)
        recs = self.segments[key]
        own = next(r for r in recs if r.session_id == rec.session_id)
        return layout.session_index_key(rec.session_id, own.session_seq, rec.stream_id, recs[0].stream_seq,
                                        recs[-1].stream_seq)

    def buffered(self, stream: int) -> int:
        """Records of `stream` appended but not stored yet."""
        return len(self._pending.get(stream, (None, []))[1])

    async def append(self, stream: int, session_id: str, *, flush: bool = True) -> Record:
        """Seal the next record of `stream`; with `flush` (the default) store it now, in one segment with any
        records of the stream still buffered; else buffer it until `flush` (or until a segment must end)."""
        rec = await self.chains[stream].append(body(len(self.records), session_id))
        self.records.append(rec)
        builder, pending = self._pending.setdefault(stream, (SegmentBuilder(), []))
        meta = meta_of(rec.to_bytes())
        if not builder.fits(meta):  # e.g. a new session too far in time from the segment's others (catalog span)
            await self.flush(stream)
            builder, pending = self._pending.setdefault(stream, (SegmentBuilder(), []))
        builder.add(meta)
        pending.append(rec)
        if flush:
            await self.flush(stream)
        return rec

    async def flush(self, stream: int | None = None) -> None:
        """Store the buffered records of `stream` (of every stream if None) as one segment each."""
        for s in [stream] if stream is not None else list(self._pending):
            _, pending = self._pending.pop(s, (None, []))
            if pending:
                await write_records(self.store, pending)
                key = layout.segment_key(pending[0].stream_id, pending[0].stream_seq, pending[-1].stream_seq)
                self.segments[key] = pending
                for i, r in enumerate(pending):
                    self._located[r.stream_id, r.stream_seq] = (key, i)

    async def publish(self, stream: int) -> dict[str, Any]:
        """Store what the stream has buffered, then publish its digest."""
        await self.flush(stream)
        return await self.writers[stream].publish(self.store)

    # -- editing one record line in place -------------------------------------------------------------------------
    async def read_record(self, rec: Record) -> bytes:
        key, i = self.segment_of(rec)
        return (await segment_lines(self.store, key))[i]

    async def set_record(self, rec: Record, raw: bytes) -> None:
        """Replace `rec`'s line with `raw` (the segment keeps its key)."""
        key, i = self.segment_of(rec)
        lines = await segment_lines(self.store, key)
        lines[i] = raw
        set_segment_lines(self.store, key, lines)

    async def rewrite_record(self, rec: Record, change: Callable[[dict], None], *, rehash: bool = False) -> dict:
        """Edit `rec`'s line as JSON; with `rehash`, recompute its hash as a forger without the key would."""
        obj = decode(await self.read_record(rec))
        change(obj)
        if rehash:
            obj["hash"] = hash_of(obj)
        await self.set_record(rec, canonical_bytes(obj))
        return obj


async def build_log(store: ObjectStore, *, n: int = 40, digest_every: int = 6,
                    heads: list[SessionHeads] | None = None, key: Ed25519PrivateKey | None = None,
                    segment_records: int = 4) -> Log:
    """`n` records over two streams and four sessions, in segments of 1..`segment_records` records; each stream
    publishes a digest every `digest_every` of its records and once at the end. The last record of stream A is
    in session `s-gamma`."""
    key = key or generate_key()
    shared = MemorySessionHeads()
    h = heads or [shared, shared]
    chains = [StreamChain(h[0], STREAM_A), StreamChain(h[1], STREAM_B)]
    log = Log(store, key, chains, [DigestWriter(c, key) for c in chains])
    for i in range(n):
        stream = (i * 7 // 3) % 2
        session = SESSIONS[(i * 5 // 2) % len(SESSIONS)] if i < n - 1 else "s-gamma"
        if i == n - 1:
            stream = 0
        await log.append(stream, session, flush=False)
        if log.buffered(stream) >= 1 + len(log.segments_of(log.chains[stream].stream_id)) % segment_records:
            await log.flush(stream)  # segments of 1, 2, ... segment_records records
        if log.chains[stream].last_seq % digest_every == 0:
            await log.publish(stream)
    for s in range(len(log.writers)):
        await log.publish(s)
    return log


# -- tampering: bypass the append-only interface ------------------------------------------------------------------
def raw_set(store: ObjectStore, key: str, data: bytes) -> None:
    if isinstance(store, MemoryStore):
        store.tamper_set(key, data)
    else:
        assert isinstance(store, FileStore)
        path = store._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def raw_delete(store: ObjectStore, key: str) -> None:
    if isinstance(store, MemoryStore):
        store.tamper_delete(key)
    else:
        os.unlink(store._path(key))  # type: ignore[attr-defined]


async def raw_get(store: ObjectStore, key: str) -> bytes:
    data = await store.get(key)
    assert data is not None, key
    return data


async def segment_lines(store: ObjectStore, key: str) -> list[bytes]:
    """The lines (records) of the segment at `key`."""
    return unpack(await raw_get(store, key))


def set_segment_lines(store: ObjectStore, key: str, lines: list[bytes]) -> None:
    """Overwrite (or create) the segment at `key` with these lines."""
    raw_set(store, key, pack(lines))


async def rewrite(store: ObjectStore, key: str, change: Callable[[dict], None], *, rehash: bool = False) -> dict:
    """Edit the JSON object at `key` (a digest, say); with `rehash`, recompute its hash as a forger without the
    key would."""
    obj = decode(await raw_get(store, key))
    change(obj)
    if rehash:
        obj["hash"] = hash_of(obj)
    raw_set(store, key, canonical_bytes(obj))
    return obj
