"""The local spool: group commit, crash recovery (torn tail), restart order, ack/segment deletion, SpoolFull."""
from __future__ import annotations

import asyncio
import os

import pytest

from gateway.audit.spool import Spool, SpoolCorrupt, SpoolFull


class CountingFsync:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)


def objs(i: int, size: int = 40) -> list[tuple[str, bytes]]:
    return [(f"records/s1/{i:08d}", bytes([i % 251]) * size), (f"sessions/x/{i:08d}", f"h{i}".encode())]


def segments(d) -> list[str]:
    return sorted(n for n in os.listdir(d) if n.endswith(".seg"))


def append_bytes(path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


async def test_append_and_pending_roundtrip(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20)
    seqs = [await sp.append(objs(i)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    got = list(sp.pending())
    assert [e.seq for e in got] == seqs
    assert [e.objects for e in got] == [objs(i) for i in range(5)]
    assert sp.size_bytes == sum(e.size for e in got) and sp.entries == 5
    assert [e.seq for e in await sp.read(2)] == [1, 2]
    assert [e.seq for e in sp.pending(after=3)] == [4, 5]
    await sp.close()


async def test_group_commit_shares_fsyncs(tmp_path):
    fs = CountingFsync()
    sp = Spool(tmp_path, max_bytes=1 << 22, fsync=fs)
    base = fs.calls
    seqs = await asyncio.gather(*(sp.append(objs(i)) for i in range(200)))
    used = fs.calls - base
    assert sorted(seqs) == list(range(1, 201))
    assert seqs == list(range(1, 201))  # gather order = call order = seq order
    assert 1 <= used < 20, used  # one data fsync per group (+ one dir fsync for the first segment)
    assert [e.objects for e in sp.pending()] == [objs(i) for i in range(200)]
    await sp.close()


async def test_group_commit_under_staggered_load(tmp_path):
    fs = CountingFsync()
    sp = Spool(tmp_path, max_bytes=1 << 22, fsync=fs)

    async def writer(w: int) -> None:
        for j in range(20):
            await sp.append(objs(w * 100 + j))
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(w) for w in range(10)))
    assert sp.entries == 200
    assert fs.calls < 200 / 2, fs.calls
    await sp.close()


async def _torn_tail_case(d, tail: bytes) -> None:
    sp = Spool(d, max_bytes=1 << 20)
    for i in range(3):
        await sp.append(objs(i))
    await sp.close()
    path = d / segments(d)[0]
    good = path.stat().st_size
    append_bytes(path, tail)  # what a crash in the middle of a write leaves behind
    sp = Spool(d, max_bytes=1 << 20)
    assert path.stat().st_size == good
    assert [e.objects for e in sp.pending()] == [objs(i) for i in range(3)]
    assert await sp.append(objs(3)) == 4  # numbering continues after the truncated tail
    await sp.close()
    sp = Spool(d, max_bytes=1 << 20)
    assert [e.objects for e in sp.pending()] == [objs(i) for i in range(4)]
    await sp.close()


async def test_torn_tail_is_truncated_on_reopen(tmp_path):
    other = Spool(tmp_path / "other", max_bytes=1 << 20)
    for i in range(4):
        await other.append(objs(i))
    await other.close()
    whole = (tmp_path / "other" / segments(tmp_path / "other")[0]).read_bytes()
    frame4 = whole[len(whole) * 3 // 4:]  # the 4th frame, numbered 4 as the torn one would be
    tails = {"short-header": b"\x07\x00", "zero-block": b"\x00" * 64, "half-frame": frame4[:len(frame4) // 2],
             "frame-minus-1": frame4[:-1]}
    for name, tail in tails.items():
        await _torn_tail_case(tmp_path / name, tail)
    # control: the same frame appended whole is a valid 4th entry, so the cases above really were torn
    d = tmp_path / "control"
    sp = Spool(d, max_bytes=1 << 20)
    for i in range(3):
        await sp.append(objs(i))
    await sp.close()
    append_bytes(d / segments(d)[0], frame4)
    sp = Spool(d, max_bytes=1 << 20)
    assert [e.objects for e in sp.pending()] == [objs(i) for i in range(4)]
    await sp.close()


async def test_flipped_byte_in_tail_frame_is_dropped(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        await sp.append(objs(i))
    await sp.close()
    path = tmp_path / segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last frame's payload: the CRC catches it
    path.write_bytes(bytes(data))
    sp = Spool(tmp_path, max_bytes=1 << 20)
    assert [e.seq for e in sp.pending()] == [1, 2]
    await sp.close()


async def test_corruption_in_older_segment_is_an_error(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for i in range(6):
        await sp.append(objs(i))
    await sp.close()
    first = tmp_path / segments(tmp_path)[0]
    assert len(segments(tmp_path)) > 1
    data = bytearray(first.read_bytes())
    data[-5] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(SpoolCorrupt):
        Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)


async def test_restart_keeps_order_and_unacked(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    for i in range(10):
        await sp.append(objs(i))
    await sp.ack(4)
    await sp.close()
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    assert [e.seq for e in sp.pending()] == list(range(5, 11))
    assert [e.objects for e in sp.pending()] == [objs(i) for i in range(4, 10)]
    assert await sp.append(objs(10)) == 11
    await sp.close()
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    assert [e.seq for e in sp.pending()] == list(range(5, 12))
    assert sp.entries == 7
    await sp.close()


async def test_ack_deletes_segments(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=250)
    for i in range(12):
        await sp.append(objs(i))
    before = segments(tmp_path)
    assert len(before) >= 3
    full = sp.size_bytes
    await sp.ack(5)
    after = segments(tmp_path)
    assert len(after) < len(before)
    assert sp.size_bytes < full
    assert sp.size_bytes == sum(e.size for e in sp.pending())
    assert [e.seq for e in sp.pending()] == list(range(6, 13))
    await sp.ack(12)
    # only the segment the writer appends to stays (deleting it would cost a file creation + directory fsync on
    # the next append, on the request path)
    active = segments(tmp_path)
    assert len(active) == 1 and sp.size_bytes == 0 and sp.entries == 0
    assert await sp.append(objs(12)) == 13  # (the active segment is full here: this one rotates)
    await sp.ack(13)
    assert len(segments(tmp_path)) == 1 and active[0] not in segments(tmp_path)
    await sp.close()
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=250)  # reopening drops what is all acknowledged
    assert segments(tmp_path) == [] and list(sp.pending()) == []
    assert await sp.append(objs(13)) == 14
    await sp.close()
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=250)
    assert [e.seq for e in sp.pending()] == [14]
    await sp.close()


async def test_read_serves_recent_entries_from_memory_and_older_ones_from_disk(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=250, cache_bytes=300)
    for i in range(10):
        await sp.append(objs(i))
    from_disk = list(sp.pending())
    assert [e.seq for e in await sp.read(100)] == [e.seq for e in from_disk]  # the oldest left the cache
    assert [e.objects for e in await sp.read(3, after=7)] == [objs(7), objs(8), objs(9)]
    assert sp._recent and sp._recent[0].seq > 1 and sp._recent_bytes <= 300
    for after in range(10):
        got = await sp.read(4, after=after)
        assert [(e.seq, e.objects, e.size) for e in got] == [
            (e.seq, e.objects, e.size) for e in from_disk[after:after + 4]]
    await sp.ack(8)
    assert [e.seq for e in await sp.read(100)] == [9, 10] and all(e.seq > 8 for e in sp._recent)
    await sp.close()


async def test_spool_full_leaves_spool_unchanged(tmp_path):
    sp = Spool(tmp_path, max_bytes=1000)
    n = 0
    with pytest.raises(SpoolFull):
        while True:
            await sp.append(objs(n))
            n += 1
    assert n > 0
    seg = tmp_path / segments(tmp_path)[0]
    size, entries, used = seg.stat().st_size, sp.entries, sp.size_bytes
    assert used <= 1000
    # concurrent appends: the ones that fit are written, the rest fail, nothing torn
    res = await asyncio.gather(*(sp.append(objs(i)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, SpoolFull) for r in res)
    assert (seg.stat().st_size, sp.entries, sp.size_bytes) == (size, entries, used)
    await sp.ack(2)  # shipping frees room
    assert await sp.append(objs(99)) == entries + 1
    await sp.close()
    sp = Spool(tmp_path, max_bytes=1000)
    assert [e.seq for e in sp.pending()] == list(range(3, entries + 2))
    await sp.close()


async def test_bad_key_is_rejected_before_writing(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(ValueError):
        await sp.append([("../etc/passwd", b"x")])
    assert sp.entries == 0 and list(sp.pending()) == []
    await sp.close()
