"""The tamper suite: each case changes the stored log the way an attacker (or a bug) could, and the verifier must
name the specific problem. A case that the verifier misses fails."""
import asyncio
import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import layout
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.chain import MemorySessionHeads
from gateway.audit.digest import generate_key, key_id, sign_digest
from gateway.audit.store import FileStore, MemoryStore
from gateway.audit.verify import VerifyResult, verify_store
from tests.audit.logbuilder import (
    STREAM_A,
    STREAM_B,
    Log,
    build_log,
    raw_delete,
    raw_get,
    raw_set,
    rewrite,
)

N = 40


@pytest.fixture(params=["memory", "file"])
async def log(request, tmp_path) -> Log:
    store = MemoryStore() if request.param == "memory" else FileStore(tmp_path / "audit", fsync=False)
    return await build_log(store, n=N)


async def verify(log: Log, *, anchors: bool = True, keys=None) -> VerifyResult:
    return await verify_store(log.store, public_keys=log.public_keys if keys is None else keys,
                              anchors=log.anchors if anchors else ())


def whats(result: VerifyResult) -> set[str]:
    return {p.what for p in result.problems}


def rkey(rec) -> str:
    return layout.record_key(rec.stream_id, rec.stream_seq)


async def test_untampered_log_verifies(log):
    for anchors in (True, False):
        result = await verify(log, anchors=anchors)
        assert result.clean, result.lines()
        assert result.lines() == [f"{N}/{N} valid"]
        assert result.digests_checked == result.digests_valid > 2


async def test_modified_byte_in_record_content(log):
    victim = log.of(STREAM_A)[4]
    raw = await raw_get(log.store, rkey(victim))
    i = raw.index(b"MASKED")
    raw_set(log.store, rkey(victim), raw[:i] + b"N" + raw[i + 1:])
    result = await verify(log)
    assert f"INVALID: hash_mismatch {rkey(victim)} (content does not match its hash)" in result.lines()
    assert result.summary() == f"{N - 1}/{N} valid" and not result.ok


async def test_modified_byte_in_hash_field(log):
    victim = log.of(STREAM_B)[2]
    raw = await raw_get(log.store, rkey(victim))
    i = raw.index(victim.hash.encode())
    raw_set(log.store, rkey(victim), raw[:i] + (b"0" if raw[i:i + 1] != b"0" else b"1") + raw[i + 1:])
    assert "hash_mismatch" in whats(await verify(log))


async def test_insignificant_whitespace_is_still_a_modified_byte(log):
    victim = log.of(STREAM_A)[0]
    raw = await raw_get(log.store, rkey(victim))
    raw_set(log.store, rkey(victim), raw.replace(b'":', b'": ', 1))
    result = await verify(log)
    assert "record_not_canonical" in whats(result) and "hash_mismatch" not in whats(result)


async def test_modified_record_with_recomputed_hash_breaks_the_links(log):
    stream_a = log.of(STREAM_A)
    victim, after = stream_a[3], stream_a[4]
    await rewrite(log.store, rkey(victim), lambda o: o.update(masked_request="nothing to see"), rehash=True)
    result = await verify(log)
    assert any(p.what == "broken_prev" and p.where == rkey(after) for p in result.problems)
    assert "broken_session_prev" in whats(result) and "index_mismatch" in whats(result)


async def test_modified_byte_in_digest(log):
    key = layout.digest_key(STREAM_A, 2)
    raw = await raw_get(log.store, key)
    raw_set(log.store, key, raw.replace(b'"last_seq":', b'"last_seq":1', 1))
    result = await verify(log)
    assert f"INVALID: bad_signature {key} (key id {key_id(log.key.public_key())})" in result.lines()
    assert result.digests_valid == result.digests_checked - 1


async def test_deleted_record(log):
    victim = log.of(STREAM_B)[5]
    raw_delete(log.store, rkey(victim))
    result = await verify(log)
    assert f"INVALID: missing_record stream {STREAM_B} seq 6 (deleted or never stored)" in result.lines()
    assert f"session {victim.session_id} seq {victim.session_seq}" in {p.where for p in result.problems
                                                                      if p.what == "session_gap"}
    assert "index_orphan" in whats(result)
    assert result.summary() == f"{N - 1}/{N} valid"


async def test_inserted_record_mid_stream(log):
    # the forger shifts stream B's records up by one and re-chains them all (no signing key needed for that)
    stream_b = log.of(STREAM_B)
    k = 3
    for rec in reversed(stream_b[k:]):
        raw_set(log.store, layout.record_key(STREAM_B, rec.stream_seq + 1), await raw_get(log.store, rkey(rec)))
    forged = await rewrite(log.store, rkey(stream_b[k]),
                           lambda o: o.update(record_id="forged", masked_request="planted"), rehash=True)
    prev = forged["hash"]
    for rec in stream_b[k:]:
        def relink(o, prev=prev):
            o.update(stream_seq=o["stream_seq"] + 1, prev=prev)
        prev = (await rewrite(log.store, layout.record_key(STREAM_B, rec.stream_seq + 1), relink, rehash=True))["hash"]
    result = await verify(log)
    assert {"digest_mismatch", "session_fork", "broken_session_prev"} <= whats(result)


async def test_record_appended_after_the_last_digest_is_unanchored(log):
    rec = await log.append(1, "s-alpha")  # a writer (or forger) adds a record no digest covers
    result = await verify(log)
    assert result.ok and not result.clean
    line = f"INVALID: unanchored stream {STREAM_B} seq {rec.stream_seq} (not covered by any valid digest)"
    assert result.lines() == [line, f"{N + 1}/{N + 1} valid"]
    assert result.problems[0].warning


async def test_duplicated_record(log):
    victim = log.of(STREAM_A)[2]
    dup_key = layout.record_key(STREAM_A, len(log.of(STREAM_A)) + 1)
    raw_set(log.store, dup_key, await raw_get(log.store, rkey(victim)))
    result = await verify(log)
    assert {"duplicate_record", "record_misplaced", "fork", "session_fork"} <= whats(result)
    assert any(p.where == dup_key for p in result.problems if p.what == "duplicate_record")


async def test_duplicated_record_renumbered_and_rehashed_is_a_fork(log):
    victim = log.of(STREAM_A)[2]
    dup_key = layout.record_key(STREAM_A, len(log.of(STREAM_A)) + 1)
    raw_set(log.store, dup_key, await raw_get(log.store, rkey(victim)))
    await rewrite(log.store, dup_key, lambda o: o.update(stream_seq=len(log.of(STREAM_A)) + 1), rehash=True)
    result = await verify(log)
    forks = {p.where for p in result.problems if p.what == "fork"}
    assert forks == {rkey(victim), dup_key}


async def test_reordered_records(log):
    a, b = log.of(STREAM_A)[5], log.of(STREAM_A)[6]
    ra, rb = await raw_get(log.store, rkey(a)), await raw_get(log.store, rkey(b))
    raw_set(log.store, rkey(a), rb)
    raw_set(log.store, rkey(b), ra)
    result = await verify(log)
    misplaced = {p.where for p in result.problems if p.what == "record_misplaced"}
    assert misplaced == {rkey(a), rkey(b)} and "broken_prev" in whats(result)


async def _truncate_tail(log: Log, stream: str, records: int) -> None:
    """Delete the last `records` records of `stream` and every digest covering them (a careful attacker)."""
    recs = log.of(stream)
    keep = len(recs) - records
    for rec in recs[keep:]:
        raw_delete(log.store, rkey(rec))
        raw_delete(log.store, layout.session_index_key(rec.session_id, rec.session_seq, stream, rec.stream_seq))
    for dkey in await log.store.list(layout.digest_prefix(stream)):
        if (await rewrite(log.store, dkey, lambda o: None))["last_seq"] > keep:
            raw_delete(log.store, dkey)


async def test_truncated_stream_tail_is_caught_with_the_external_digest(log):
    await _truncate_tail(log, STREAM_A, 3)
    kept = len(log.of(STREAM_A)) - 3
    blind = await verify(log, anchors=False)  # without an anchor a careful cut is invisible (only unanchored)...
    assert blind.ok and whats(blind) <= {"unanchored"}
    result = await verify(log)  # ...with the latest digest held outside the store it is not
    assert {"truncated_digests", "truncated_stream", "truncated_session"} <= whats(result)
    assert any(p.where == f"stream {STREAM_A} seq {kept + 3}" for p in result.problems if p.what == "truncated_stream")
    assert not result.ok and result.summary() == f"{N - 3}/{N} valid"


async def test_truncated_session_tail(log):
    # the last record of stream A is the last of s-gamma; cut only that one
    last = log.of(STREAM_A)[-1]
    assert last.session_id == "s-gamma" and last.session_seq == max(r.session_seq for r in log.records
                                                                    if r.session_id == "s-gamma")
    await _truncate_tail(log, STREAM_A, 1)
    result = await verify(log)
    assert f"session s-gamma seq {last.session_seq}" in {p.where for p in result.problems
                                                          if p.what == "truncated_session"}


async def test_records_deleted_but_digests_left_show_truncation_without_anchor(log):
    for rec in log.of(STREAM_B)[-2:]:
        raw_delete(log.store, rkey(rec))
    result = await verify(log, anchors=False)
    assert "truncated_stream" in whats(result)


async def test_fork_two_writers_with_unshared_session_heads(tmp_path):
    # two replicas that do not share session heads both write "s-alpha": same session_seq, two records
    log = await build_log(MemoryStore(), n=12, heads=[MemorySessionHeads(), MemorySessionHeads()])
    result = await verify(log)
    assert "session_fork" in whats(result)


async def test_digest_resigned_with_another_key(log):
    key = layout.digest_key(STREAM_B, 2)
    attacker = generate_key()
    forged = await rewrite(log.store, key, lambda o: None)
    raw_set(log.store, key, canonical_bytes(sign_digest({**forged, "last_seq": 1}, attacker)))
    result = await verify(log)
    assert f"unknown_key {key}" in {f"{p.what} {p.where}" for p in result.problems}
    # ...and keeping the genuine key id does not help
    resigned = sign_digest(forged, attacker)
    resigned["public_key_id"] = forged["public_key_id"]
    raw_set(log.store, key, canonical_bytes(resigned))
    assert "bad_signature" in whats(await verify(log))


async def test_forged_anchor_is_refused(log):
    anchor = {**log.anchors[0], "last_seq": 1}
    result = await verify_store(log.store, public_keys=log.public_keys, anchors=[anchor])
    assert "anchor_bad_signature" in whats(result)


async def test_deleted_digest_and_index_pointer(log):
    raw_delete(log.store, layout.digest_key(STREAM_A, 2))
    rec = log.of(STREAM_B)[1]
    ikey = layout.session_index_key(rec.session_id, rec.session_seq, STREAM_B, rec.stream_seq)
    raw_delete(log.store, ikey)
    result = await verify(log)
    assert f"INVALID: missing_digest stream {STREAM_A} digest 2 (deleted or never stored)" in result.lines()
    assert any(p.what == "index_missing" and p.where == ikey for p in result.problems)


async def test_without_public_keys_nothing_is_anchored(log):
    result = await verify(log, keys=[], anchors=False)
    assert "unknown_key" in whats(result) and "unanchored" in whats(result)


async def test_foreign_objects_are_reported(log):
    raw_set(log.store, "streams/x/notes.txt", b"hi")
    raw_set(log.store, layout.record_key(STREAM_A, 999) + "x", b"{}")
    assert "unexpected_object" in whats(await verify(log))


async def test_garbage_record_and_float_smuggling(log):
    victim, other = log.of(STREAM_A)[1], log.of(STREAM_B)[1]
    raw_set(log.store, rkey(victim), b"not json")
    obj = decode(await raw_get(log.store, rkey(other)))
    obj["detail"]["x"] = 1.5  # a forger's float, hashed "correctly" with a JSON library that allows it
    del obj["hash"]
    obj["hash"] = hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()
    raw_set(log.store, rkey(other), orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    result = await verify(log)
    assert "record_unreadable" in whats(result) and "record_malformed" in whats(result)


# -- property: no single-byte change anywhere in the store goes unnoticed, and the verifier never crashes ----------
_BASE: dict[str, object] = {}


def _base_log() -> tuple[dict[str, bytes], list, list]:
    if not _BASE:
        async def make():
            log = await build_log(MemoryStore(), n=10, digest_every=3)
            keys = await log.store.list("", limit=10_000)
            return {k: await log.store.get(k) for k in keys}, log.public_keys, log.anchors
        _BASE["log"] = asyncio.run(make())
    return _BASE["log"]  # type: ignore[return-value]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_reported(data):
    objects, keys, anchors = _base_log()
    key = data.draw(st.sampled_from(sorted(objects)))
    raw = objects[key]
    i = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
    store = MemoryStore()
    for k, v in objects.items():
        store.tamper_set(k, v)
    store.tamper_set(key, raw[:i] + bytes([new]) + raw[i + 1:])
    result = asyncio.run(verify_store(store, public_keys=keys, anchors=anchors))
    assert not result.ok, (key, i, new)


async def test_empty_store():
    result = await verify_store(MemoryStore())
    assert result.clean and result.lines() == ["0/0 valid"]


async def test_whole_stream_deleted_is_caught_by_its_anchor(log):
    for key in await log.store.list(layout.stream_prefix(STREAM_A), limit=10_000):
        raw_delete(log.store, key)
    for key in await log.store.list("sessions/", limit=10_000):
        if STREAM_A in key:
            raw_delete(log.store, key)
    result = await verify(log)
    assert {"truncated_digests", "truncated_stream"} <= whats(result)
    assert result.summary() == f"{len(log.of(STREAM_B))}/{N} valid"
