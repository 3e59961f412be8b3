"""Closing a killed process's stream: the next process signs the digest it never wrote, over stored records only."""
from __future__ import annotations

import pytest

from gateway.audit.closing import StreamRegistry, close_stream
from gateway.audit.digest import generate_key
from gateway.audit.store import MemoryStore
from gateway.audit.verify import verify_store
from tests.audit.logbuilder import STREAM_A, STREAM_B, build_log, raw_delete


async def killed_log(*, straddle: bool = False):
    """A log whose stream A wrote 5 records after its last digest and then died. With `straddle`, the segment
    holding them also holds the 3 records before that digest (the uploader ships what the spool holds, across
    digest boundaries)."""
    log = await build_log(MemoryStore(), n=20)
    if straddle:
        for _ in range(3):
            await log.append(0, "s-early", flush=False)
        await log.writers[0].publish(log.store)  # digest over records still buffered (not yet stored)
    for _ in range(5):
        await log.append(0, "s-late", flush=False)
    await log.flush(0)
    return log


@pytest.mark.parametrize("straddle", [False, True])
async def test_closing_digest_anchors_the_tail(straddle):
    log = await killed_log(straddle=straddle)
    assert len(log.segments[log.segment_of(log.of(STREAM_A)[-1])[0]]) == (8 if straddle else 5)
    before = await verify_store(log.store, public_keys=log.public_keys)
    assert before.has("unanchored")
    digest = await close_stream(log.store, STREAM_A, log.key)
    assert digest is not None and digest["last_seq"] == log.chains[0].last_seq
    assert digest["sessions_touched"] == {"s-late": [5, log.of(STREAM_A)[-1].hash]}  # only what follows the digest
    after = await verify_store(log.store, public_keys=log.public_keys)
    assert after.clean, after.lines()
    assert await close_stream(log.store, STREAM_A, log.key) is None  # nothing left to anchor
    assert await close_stream(log.store, STREAM_B, log.key) is None


async def test_never_extends_another_keys_chain():
    log = await killed_log()
    assert await close_stream(log.store, STREAM_A, generate_key()) is None


@pytest.mark.parametrize("rehash", [False, True])
async def test_never_signs_a_broken_tail(rehash):
    log = await killed_log()
    tail = log.of(STREAM_A)[-2]
    await log.rewrite_record(tail, lambda o: o.update(prev="0" * 64), rehash=rehash)
    with pytest.raises(ValueError, match=f"does not chain at {log.where(tail)}"):
        await close_stream(log.store, STREAM_A, log.key)


async def test_never_signs_over_a_missing_or_unreadable_tail_segment():
    log = await killed_log()
    key, _ = log.segment_of(log.of(STREAM_A)[-1])
    raw_delete(log.store, key)
    assert await close_stream(log.store, STREAM_A, log.key) is None  # nothing stored after the digest
    log = await killed_log()
    key, _ = log.segment_of(log.of(STREAM_A)[-1])
    log.store.tamper_set(key, (await log.store.get(key))[:-1])  # not newline-terminated
    with pytest.raises(ValueError, match="unreadable"):
        await close_stream(log.store, STREAM_A, log.key)


async def test_a_gap_in_the_tail_is_not_signed_over():
    log = await killed_log()
    for _ in range(2):
        await log.append(0, "s-late")
    raw_delete(log.store, log.segment_of(log.of(STREAM_A)[-2])[0])  # the 5-record segment stays, then a hole
    with pytest.raises(ValueError, match=f"does not chain at {log.where(log.of(STREAM_A)[-1])}"):
        await close_stream(log.store, STREAM_A, log.key)


def test_registry_round_trip(tmp_path):
    reg = StreamRegistry(str(tmp_path))
    assert reg.open_streams() == []
    reg.add("a")
    reg.add("b")
    reg.add("a")
    assert reg.open_streams() == ["a", "b"]
    reg.remove("a")
    assert reg.open_streams() == ["b"]
