"""Local append-only spool: audit objects are durable on local disk before the store has them.

An *entry* is one `append` call (a list of ``(key, bytes)`` objects, e.g. `chain.spool_entry(record)`) and is one
frame on disk, so a crash keeps all of an append or none of it (a record never lands without its index pointer).
Frame: ``<u32 payload length><u32 crc32(seq + payload)><u64 seq>`` then the payload (``<u16 n>`` and per object
``<u16 key length><key><u32 data length><data>``). Entries are numbered 1, 2, 3... and live in segment files
``<first seq>.seg``; the highest shipped seq is kept in ``ack`` (replaced atomically), so after a restart
`pending()` yields exactly what the uploader has not acknowledged, in order.

Group commit: `append` queues its frame and a single flusher writes everything queued since the last flush with one
write + one fsync, on a single writer thread (one thread keeps the file order equal to the seq order and keeps
blocking I/O off the event loop). A crash mid-write leaves a torn tail frame; opening the spool detects it (short
frame, bad CRC or wrong seq) and truncates it — that data was never acknowledged to a caller.

The writer thread does nothing else, because callers wait for it (strict durability waits twice per request):
the uploader's reads and acks run on a second thread, and most reads never touch the disk — the newest durable
entries are kept in memory (`cache_bytes`), which is where an uploader that keeps up reads. A fully acknowledged
segment is deleted only once the writer has moved on to a newer one: deleting the active segment would make the
next append create a file and fsync the directory, an extra journal commit on the request path.
"""
from __future__ import annotations

import asyncio
import os
import struct
import threading
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gateway.audit.store import validate_key

__all__ = ["Entry", "Spool", "SpoolCorrupt", "SpoolFull"]

_HEAD = struct.Struct("<IIQ")
_SEG_SUFFIX = ".seg"


class SpoolFull(Exception):
    """Appending would exceed the spool's `max_bytes` (the store has been down too long): fail closed, 503."""


class SpoolCorrupt(Exception):
    """A bad frame that is not a torn tail (inside an older segment): needs an operator, never silently dropped."""


@dataclass(frozen=True)
class Entry:
    seq: int
    objects: list[tuple[str, bytes]]
    size: int
    """Bytes on disk, frame header included (what counts against `max_bytes`)."""


class _Segment:
    def __init__(self, path: str, first_seq: int) -> None:
        self.path, self.first_seq = path, first_seq
        self.ends = array("q")  # end offset of each entry: 8 bytes per entry, no per-entry objects in memory

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.ends) - 1

    @property
    def size(self) -> int:
        return self.ends[-1] if self.ends else 0

    def start_of(self, seq: int) -> int:
        i = min(seq - self.first_seq, len(self.ends))  # clamp: an ack may run ahead of segment deletion
        return self.ends[i - 1] if i > 0 else 0


def _payload(objects: list[tuple[str, bytes]]) -> bytes:
    parts = [struct.pack("<H", len(objects))]
    for key, data in objects:
        k = validate_key(key).encode("ascii")
        parts += [struct.pack("<H", len(k)), k, struct.pack("<I", len(data)), bytes(data)]
    return b"".join(parts)


def _frame(seq: int, payload: bytes) -> bytes:
    seqb = struct.pack("<Q", seq)
    return _HEAD.pack(len(payload), zlib.crc32(payload, zlib.crc32(seqb)), seq) + payload


def _decode(payload: bytes) -> list[tuple[str, bytes]]:
    (n,), pos, out = struct.unpack_from("<H", payload), 2, []
    for _ in range(n):
        (kl,) = struct.unpack_from("<H", payload, pos)
        key = payload[pos + 2:pos + 2 + kl].decode("ascii")
        (dl,) = struct.unpack_from("<I", payload, pos + 2 + kl)
        pos += 6 + kl
        out.append((key, payload[pos:pos + dl]))
        pos += dl
    return out


def _read_frame(f, seq: int) -> tuple[bytes, int] | None:
    """The payload of the frame at f's position if it is whole, intact and numbered `seq`; else None (torn)."""
    head = f.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    length, crc, got_seq = _HEAD.unpack(head)
    payload = f.read(length)
    if len(payload) < length or got_seq != seq or zlib.crc32(payload, zlib.crc32(head[8:])) != crc:
        return None
    return payload, _HEAD.size + length


class Spool:
    """`Spool(dir, max_bytes=...)`. Opening scans the segments (blocking, once, at start-up)."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int, fsync: bool | Callable[[int], None] = True,
                 segment_bytes: int = 4 << 20, cache_bytes: int = 16 << 20) -> None:
        self.dir = os.path.abspath(os.fspath(directory))
        self.max_bytes, self.segment_bytes, self.cache_bytes = max_bytes, segment_bytes, cache_bytes
        # `fsync` may be a function (tests count calls); False is for benchmarks only — no durability then.
        self._fsync: Callable[[int], None] = (fsync if callable(fsync) else os.fsync if fsync else (lambda fd: None))
        self.appended = asyncio.Event()
        """Set after every durable append; the uploader waits on it (and may set it to wake itself)."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-spool")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-spool-read")
        self._recent: deque[Entry] = deque()  # newest durable entries, consecutive seqs (event loop only)
        self._recent_bytes = 0
        self._meta = threading.Lock()  # guards _segs between the writer thread and readers on the loop
        self._queue: list[tuple[bytes, list[tuple[str, bytes]], asyncio.Future[int]]] = []
        self._queued_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self._file = None
        os.makedirs(self.dir, exist_ok=True)
        self._open()

    # -- open / recovery ------------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            with open(os.path.join(self.dir, "ack")) as f:
                self.acked = int(f.read().strip() or 0)
        except FileNotFoundError:
            self.acked = 0
        names = sorted((int(n[:-len(_SEG_SUFFIX)]), n) for n in os.listdir(self.dir) if n.endswith(_SEG_SUFFIX))
        self._segs: list[_Segment] = []
        for i, (first, name) in enumerate(names):
            seg = _Segment(os.path.join(self.dir, name), first)
            last = i == len(names) - 1
            with open(seg.path, "r+b") as f:
                pos, seq = 0, first
                while (frame := _read_frame(f, seq)) is not None:
                    pos += frame[1]
                    seg.ends.append(pos)
                    seq += 1
                if pos != os.fstat(f.fileno()).st_size:
                    if not last:
                        raise SpoolCorrupt(f"bad frame at {seg.path}:{pos} (not the newest segment)")
                    f.truncate(pos)  # torn tail of a write a crash interrupted: never acknowledged
                    f.flush()
                    self._fsync(f.fileno())
            if self._segs and first != self._segs[-1].last_seq + 1:
                raise SpoolCorrupt(f"segment {seg.path} does not continue seq {self._segs[-1].last_seq}")
            self._segs.append(seg)
        self._opened = False  # at open every fully acknowledged segment goes, the newest too (no writer yet)
        self._drop_acked_segments()
        self._opened = True
        self.last_seq = max(self.acked, self._segs[-1].last_seq if self._segs else 0)

    # -- append (group commit) ------------------------------------------------------------------------------
    @property
    def size_bytes(self) -> int:
        """Bytes of entries not yet acknowledged (what counts against `max_bytes`)."""
        with self._meta:
            total = sum(s.size for s in self._segs)
            if self._segs and self._segs[0].first_seq <= self.acked:
                total -= self._segs[0].start_of(self.acked + 1)
            return total

    @property
    def entries(self) -> int:
        """Unacknowledged entries on disk."""
        return self.last_seq - self.acked

    def has_room(self) -> bool:
        """False once the backlog has reached `max_bytes` (admission control for new work)."""
        return self.size_bytes + self._queued_bytes < self.max_bytes

    async def append(self, objects: list[tuple[str, bytes]], *, force: bool = False) -> int:
        """Spool one entry; returns its seq once it is fsynced. Raises `SpoolFull` (nothing written) when the
        entry does not fit in `max_bytes` — unless `force`, for the record of work already admitted (so the spool
        may exceed `max_bytes` by what was in flight when it filled) — and ValueError on a bad key."""
        return await asyncio.shield(self.enqueue(objects, force=force))  # a cancelled caller must not cancel others

    def enqueue(self, objects: list[tuple[str, bytes]], *, force: bool = False) -> asyncio.Future[int]:
        """`append` without waiting: the entry is queued now (entries are written in the order of these calls);
        the future resolves to its seq once fsynced. Same errors as `append`, raised here."""
        if self._pool is None:
            raise RuntimeError("spool is closed")
        payload = _payload(objects)  # seq (in the header) is assigned by the writer thread
        if not force and self.size_bytes + self._queued_bytes + _HEAD.size + len(payload) > self.max_bytes:
            raise SpoolFull(f"audit spool full ({self.max_bytes} bytes)")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((payload, objects, fut))
        self._queued_bytes += _HEAD.size + len(payload)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return fut

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            # Everything queued while the previous flush ran goes in this one write + fsync.
            batch, self._queue = self._queue, []
            try:
                first = await loop.run_in_executor(self._pool, self._write, [p for p, _, _ in batch])
            except BaseException as exc:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
                if not isinstance(exc, Exception):
                    raise
            else:
                for i, (payload, objects, fut) in enumerate(batch):
                    self._remember(Entry(first + i, objects, _HEAD.size + len(payload)))
                    if not fut.done():
                        fut.set_result(first + i)
                self.appended.set()
            finally:
                self._queued_bytes -= sum(_HEAD.size + len(p) for p, _, _ in batch)

    def _remember(self, entry: Entry) -> None:
        if self._recent and self._recent[-1].seq != entry.seq - 1:
            self._forget_recent()
        self._recent.append(entry)
        self._recent_bytes += entry.size
        while self._recent_bytes > self.cache_bytes and self._recent:
            self._recent_bytes -= self._recent.popleft().size

    def _forget_recent(self, upto: int | None = None) -> None:
        """Drop cached entries with seq <= `upto` (all of them when None)."""
        while self._recent and (upto is None or self._recent[0].seq <= upto):
            self._recent_bytes -= self._recent.popleft().size

    def _write(self, payloads: list[bytes]) -> int:
        """Writer thread: number, frame, write and fsync `payloads` in one go; returns the first seq."""
        first = self.last_seq + 1
        if self._file is None or not self._segs or self._segs[-1].size >= self.segment_bytes:
            self._rotate(first)
        seg, f = self._segs[-1], self._file
        start = seg.size
        buf, ends = bytearray(), []
        for i, payload in enumerate(payloads):
            buf += _frame(first + i, payload)
            ends.append(start + len(buf))
        try:
            os.pwrite(f, buf, start)
            self._fsync(f)
        except BaseException:
            os.ftruncate(f, start)  # leave no half batch behind for the next flush to append after
            raise
        with self._meta:
            seg.ends.extend(ends)
            self.last_seq = first + len(payloads) - 1
        return first

    def _rotate(self, first_seq: int) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None
        if not self._segs or self._segs[-1].ends:  # reuse an empty newest segment
            path = os.path.join(self.dir, f"{first_seq:020d}{_SEG_SUFFIX}")
            with self._meta:
                self._segs.append(_Segment(path, first_seq))
        self._file = os.open(self._segs[-1].path, os.O_RDWR | os.O_CREAT, 0o644)
        self._fsync_dir()  # the new name must survive a crash too

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    # -- read / ack -----------------------------------------------------------------------------------------
    def pending(self, after: int | None = None, limit: int | None = None) -> Iterator[Entry]:
        """Unacknowledged entries with seq > `after` (default: the ack position), in order, across segments."""
        seq = max(self.acked, after or 0) + 1
        with self._meta:  # snapshot: the writer may append meanwhile; we read only what was committed
            segs = [(s.path, s.first_seq, s.last_seq, s.start_of(max(seq, s.first_seq)))
                    for s in self._segs if s.last_seq >= seq]
        n = 0
        for path, first, last, offset in segs:
            with open(path, "rb") as f:
                f.seek(offset)
                for s in range(max(seq, first), last + 1):
                    if limit is not None and n >= limit:
                        return
                    frame = _read_frame(f, s)
                    if frame is None:
                        raise SpoolCorrupt(f"bad frame seq {s} in {path}")
                    yield Entry(s, _decode(frame[0]), frame[1])
                    n += 1

    async def read(self, limit: int, after: int | None = None) -> list[Entry]:
        """`pending`, from memory when the entries are recent, else from the files on the reader thread."""
        seq = max(self.acked, after or 0) + 1
        if self._recent and self._recent[0].seq <= seq:
            i = seq - self._recent[0].seq
            return [self._recent[j] for j in range(i, min(len(self._recent), i + max(0, limit)))]
        return await asyncio.get_running_loop().run_in_executor(
            self._reader, lambda: list(self.pending(after, limit)))

    async def ack(self, upto: int) -> None:
        """Entries up to `upto` are in the store: persist that, then delete fully acknowledged segments."""
        if upto > self.acked:
            await asyncio.get_running_loop().run_in_executor(self._reader, self._ack, min(upto, self.last_seq))
            self._forget_recent(self.acked)

    def _ack(self, upto: int) -> None:
        # Not fsynced, on purpose: an ack lost in a crash only makes the next start ship those entries again,
        # which `put_if_absent` makes harmless (and the journal's recovery checks for records already made).
        # Two fsyncs per ack sat on the writer thread ahead of appends that callers wait for.
        tmp = os.path.join(self.dir, "ack.tmp")
        with open(tmp, "w") as f:
            f.write(f"{upto}\n")
        os.replace(tmp, os.path.join(self.dir, "ack"))  # atomic: the old or the new position, never half
        self.acked = upto
        self._drop_acked_segments()

    def _drop_acked_segments(self) -> None:
        """Delete segments whose entries are all acknowledged, except the one the writer appends to (see the module
        docstring; runs on the reader thread, the writer only ever touches the newest segment). If a crash loses
        the ack but not the deletion, the next open finds an older ack and the later segments: what is gone had
        been shipped."""
        while True:
            with self._meta:
                if not self._segs or self._segs[0].last_seq > self.acked:
                    return
                if len(self._segs) == 1 and self._opened:
                    return  # the active segment stays until the writer rotates past it
                seg = self._segs.pop(0)
            os.unlink(seg.path)

    async def close(self) -> None:
        """Wait for queued appends, then release the file and the writer thread."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._reader, lambda: None)  # an ack in flight finishes first
            await loop.run_in_executor(pool, self._close_file)
            pool.shutdown(wait=True)
            self._reader.shutdown(wait=True)

    def _close_file(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None
