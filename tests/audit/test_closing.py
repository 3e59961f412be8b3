"""Closing a killed process's stream: the next process signs the digest it never wrote, over stored records only."""
from __future__ import annotations

from gateway.audit.closing import StreamRegistry, close_stream
from gateway.audit.digest import generate_key
from gateway.audit.store import MemoryStore
from gateway.audit.verify import verify_store
from tests.audit.logbuilder import STREAM_A, STREAM_B, build_log, rewrite
from gateway.audit import layout


async def killed_log():
    """A log whose stream A wrote 5 records after its last digest and then died."""
    log = await build_log(MemoryStore(), n=20)
    for _ in range(5):
        await log.append(0, "s-late")
    return log


async def test_closing_digest_anchors_the_tail():
    log = await killed_log()
    before = await verify_store(log.store, public_keys=log.public_keys)
    assert before.has("unanchored")
    digest = await close_stream(log.store, STREAM_A, log.key)
    assert digest is not None and digest["last_seq"] == log.chains[0].last_seq
    assert digest["sessions_touched"]["s-late"][1] == log.of(STREAM_A)[-1].hash
    after = await verify_store(log.store, public_keys=log.public_keys)
    assert after.clean, after.lines()
    assert await close_stream(log.store, STREAM_A, log.key) is None  # nothing left to anchor
    assert await close_stream(log.store, STREAM_B, log.key) is None


async def test_never_extends_another_keys_chain_nor_signs_a_broken_tail():
    log = await killed_log()
    assert await close_stream(log.store, STREAM_A, generate_key()) is None
    tail = log.of(STREAM_A)[-2]
    await rewrite(log.store, layout.record_key(STREAM_A, tail.stream_seq), lambda o: o.update(prev="0" * 64))
    try:
        await close_stream(log.store, STREAM_A, log.key)
    except ValueError as exc:
        assert "does not chain" in str(exc)
    else:
        raise AssertionError("signed over a tail that does not chain")


def test_registry_round_trip(tmp_path):
    reg = StreamRegistry(str(tmp_path))
    assert reg.open_streams() == []
    reg.add("a")
    reg.add("b")
    reg.add("a")
    assert reg.open_streams() == ["a", "b"]
    reg.remove("a")
    assert reg.open_streams() == ["b"]
