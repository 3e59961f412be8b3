"""The tamper suite: each case changes the stored log the way an attacker (or a bug) could, and the verifier must
name the specific problem. A case that the verifier misses fails.

Records live in multi-record segments (see `logbuilder`); a record's problems are reported at
`<segment key>#<stream_seq>` (`Log.where`)."""
import asyncio
import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import layout
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.chain import MemorySessionHeads, write_records
from gateway.audit.digest import generate_key, key_id, sign_digest
from gateway.audit.record import hash_of
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
    segment_lines,
    set_segment_lines,
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


def found(result: VerifyResult, what: str) -> list[str]:
    """Where each problem of kind `what` was reported, in order."""
    return [p.where for p in result.problems if p.what == what]


def segment_with(log: Log, stream: str, size: int, *, not_last: bool = True) -> str:
    """A segment of `stream` holding at least `size` records (not the stream's last one, by default)."""
    keys = log.segments_of(stream)
    return next(k for k in (keys[:-1] if not_last else keys) if len(log.segments[k]) >= size)


def sessions_in(log: Log, segment: str) -> set[str]:
    return {r.session_id for r in log.segments[segment]}


async def test_untampered_log_verifies(log):
    assert {len(recs) for recs in log.segments.values()} >= {1, 2, 3, 4}  # segments of several sizes
    for anchors in (True, False):
        result = await verify(log, anchors=anchors)
        assert result.clean, result.lines()
        assert result.lines() == [f"{N}/{N} valid"]
        assert result.digests_checked == result.digests_valid > 2


# -- one record's bytes -------------------------------------------------------------------------------------------
async def test_modified_byte_in_record_content(log):
    victim = log.of(STREAM_A)[4]
    raw = await log.read_record(victim)
    i = raw.index(b"MASKED")
    await log.set_record(victim, raw[:i] + b"N" + raw[i + 1:])
    result = await verify(log)
    assert result.lines() == [f"INVALID: hash_mismatch {log.where(victim)} (content does not match its hash)",
                              f"{N - 1}/{N} valid"]
    assert not result.ok


async def test_modified_byte_in_hash_field(log):
    victim = log.of(STREAM_B)[2]
    raw = await log.read_record(victim)
    i = raw.index(victim.hash.encode())
    await log.set_record(victim, raw[:i] + (b"0" if raw[i:i + 1] != b"0" else b"1") + raw[i + 1:])
    result = await verify(log)
    assert found(result, "hash_mismatch") == [log.where(victim)]
    assert found(result, "index_mismatch") == [log.pointer_key(victim)]  # the pointer names the true hash


async def test_insignificant_whitespace_is_still_a_modified_byte(log):
    victim = log.of(STREAM_A)[0]
    raw = await log.read_record(victim)
    await log.set_record(victim, raw.replace(b'":', b'": ', 1))
    result = await verify(log)
    line = f"INVALID: record_not_canonical {log.where(victim)} (bytes differ from the canonical encoding)"
    assert result.lines() == [line, f"{N - 1}/{N} valid"]


async def test_modified_record_with_recomputed_hash_breaks_the_links(log):
    # a record changed and re-hashed without the signing key: its successors no longer chain to it
    stream_a = log.of(STREAM_A)
    victim, after = stream_a[3], stream_a[4]
    next_in_session = next(r for r in log.records if r.session_id == victim.session_id
                           and r.session_seq == victim.session_seq + 1)
    await log.rewrite_record(victim, lambda o: o.update(masked_request="nothing to see"), rehash=True)
    result = await verify(log)
    assert found(result, "broken_prev") == [log.where(after)]
    assert found(result, "broken_session_prev") == [log.where(next_in_session)]
    assert found(result, "index_mismatch") == [log.pointer_key(victim)]
    assert "hash_mismatch" not in whats(result) and "digest_mismatch" in whats(result)


async def test_garbage_record_and_float_smuggling(log):
    victim, other = log.of(STREAM_A)[1], log.of(STREAM_B)[1]
    await log.set_record(victim, b"not json")
    obj = decode(await log.read_record(other))
    obj["detail"]["x"] = 1.5  # a forger's float, hashed "correctly" with a JSON library that allows it
    del obj["hash"]
    obj["hash"] = hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()
    await log.set_record(other, orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    result = await verify(log)
    assert found(result, "record_unreadable") == [log.where(victim)]
    assert found(result, "record_malformed") == [log.where(other)]
    # their segments' index objects are not compared (nothing to compare them with): no second, confusing report
    assert not {w for w in whats(result) if w.startswith(("index_", "catalog_"))}


async def test_record_the_layout_cannot_index(log):
    # a session start whose time has no milliseconds passes the schema, but no catalog key can spell it
    victim = next(r for r in log.of(STREAM_B) if r.session_seq == 1)
    await log.rewrite_record(victim, lambda o: o.update(time="2025-01-01T00:00:00Z"), rehash=True)
    result = await verify(log)
    malformed = [p for p in result.problems if p.what == "record_malformed"]
    assert [p.where for p in malformed] == [log.where(victim)] and malformed[0].detail.startswith("cannot be indexed")
    assert not {w for w in whats(result) if w.startswith(("index_", "catalog_"))}  # its segment is not compared


# -- lines of a segment -------------------------------------------------------------------------------------------
async def test_record_line_removed_from_a_segment(log):
    key = segment_with(log, STREAM_A, 3)
    recs = log.segments[key]
    lines = await segment_lines(log.store, key)
    set_segment_lines(log.store, key, lines[:1] + lines[2:])  # same key, one line fewer
    first, last, removed = recs[0].stream_seq, recs[-1].stream_seq, recs[1]
    result = await verify(log)
    assert found(result, "segment_malformed") == [key]
    assert f"INVALID: segment_malformed {key} ({len(recs) - 1} lines for records {first}..{last})" in result.lines()
    assert found(result, "record_misplaced") == [f"{key}#{first + i}" for i in range(1, len(recs) - 1)]
    assert found(result, "missing_record") == [f"stream {STREAM_A} seq {removed.stream_seq}"]
    assert not {"broken_prev", "fork", "duplicate_record"} & whats(result)
    bad = len(recs) - 2
    assert result.summary() == f"{N - 1 - bad}/{N} valid"


async def test_record_line_duplicated_in_a_segment(log):
    key = segment_with(log, STREAM_B, 2)
    recs = log.segments[key]
    lines = await segment_lines(log.store, key)
    set_segment_lines(log.store, key, lines[:1] + lines)
    first = recs[0].stream_seq
    result = await verify(log)
    assert found(result, "segment_malformed") == [key]
    assert found(result, "duplicate_record") == [f"{key}#{first + 1}"]
    assert found(result, "record_misplaced") == [f"{key}#{first + i}" for i in range(1, len(recs) + 1)]
    assert not {"fork", "session_fork", "missing_record", "broken_prev"} & whats(result)  # one record, twice


async def test_two_lines_swapped(log):
    key = segment_with(log, STREAM_A, 3)
    lines = await segment_lines(log.store, key)
    lines[1], lines[2] = lines[2], lines[1]
    set_segment_lines(log.store, key, lines)
    a, b = log.segments[key][1:3]
    result = await verify(log)
    assert [(p.what, p.where) for p in result.problems] == [("record_misplaced", log.where(a)),
                                                           ("record_misplaced", log.where(b))]
    assert result.problems[0].detail == f"claims stream {STREAM_A} seq {b.stream_seq}"
    assert result.summary() == f"{N - 2}/{N} valid"


async def test_segment_without_its_final_newline(log):
    key = segment_with(log, STREAM_B, 2)
    raw_set(log.store, key, (await raw_get(log.store, key))[:-1])
    result = await verify(log)
    assert result.lines() == [f"INVALID: segment_malformed {key} (does not end with a newline)", f"{N}/{N} valid"]
    assert not result.ok


# -- whole segments -----------------------------------------------------------------------------------------------
async def test_whole_segment_deleted(log):
    key = segment_with(log, STREAM_B, 2)
    recs = log.segments[key]
    raw_delete(log.store, key)
    result = await verify(log)
    first, last = recs[0].stream_seq, recs[-1].stream_seq
    assert found(result, "missing_record") == [f"stream {STREAM_B} seq {first}..{last}"]
    assert set(found(result, "session_gap")) == {f"session {r.session_id} seq {r.session_seq}" for r in recs}
    pointers = [k for k, _ in log.index_objects(key) if k.startswith(layout.SESSIONS)]
    assert sorted(found(result, "index_orphan")) == sorted(pointers)
    assert all(p.detail == f"the store holds no segment {key}" for p in result.problems if p.what == "index_orphan")
    assert result.summary() == f"{N - len(recs)}/{N} valid"


async def test_overlapping_duplicate_segment(log):
    # genuine records written again as one segment straddling two stored ones (a buggy or replayed uploader)
    keys = log.segments_of(STREAM_A)
    i = next(i for i, k in enumerate(keys[:-1]) if len(log.segments[k]) >= 2)
    tail, head = log.segments[keys[i]][-1:], log.segments[keys[i + 1]][:2]
    await write_records(log.store, tail + head)  # the segment and its index objects: all consistent
    result = await verify(log)
    assert whats(result) == {"duplicate_record"}
    assert sorted(int(w.rsplit("#", 1)[1]) for w in found(result, "duplicate_record")) == [
        r.stream_seq for r in tail + head]
    assert result.summary() == f"{N}/{N + 3} valid"


async def test_segment_renamed_to_another_range(log):
    key = segment_with(log, STREAM_A, 2)
    recs = log.segments[key]
    first, last = recs[0].stream_seq, recs[-1].stream_seq
    moved = layout.segment_key(STREAM_A, first + 500, last + 500)
    raw_set(log.store, moved, await raw_get(log.store, key))
    raw_delete(log.store, key)
    result = await verify(log)
    assert found(result, "record_misplaced") == [f"{moved}#{first + 500 + i}" for i in range(len(recs))]
    pointers = [k for k, _ in log.index_objects(key) if k.startswith(layout.SESSIONS)]
    assert sorted(found(result, "index_orphan")) == sorted(pointers)
    assert whats(result) <= {"record_misplaced", "index_orphan", "catalog_orphan"}  # no gap: the records are there
    assert result.summary() == f"{N - len(recs)}/{N} valid"


# -- index and catalog objects ------------------------------------------------------------------------------------
async def test_pointer_body_edited(log):
    rec = log.of(STREAM_B)[4]
    key = log.pointer_key(rec)
    body = decode(await raw_get(log.store, key))
    body[0][2] = log.of(STREAM_B)[5].hash
    raw_set(log.store, key, canonical_bytes(body))
    result = await verify(log)
    assert result.lines() == [f"INVALID: index_mismatch {key} (differs from what {log.segment_of(rec)[0]} implies)",
                              f"{N}/{N} valid"]


async def test_pointer_deleted(log):
    rec = log.of(STREAM_A)[5]
    key = log.pointer_key(rec)
    raw_delete(log.store, key)
    result = await verify(log)
    assert [(p.what, p.where) for p in result.problems] == [("index_missing", key)]


async def test_pointer_renamed_to_another_session_seq(log):
    rec = log.of(STREAM_A)[5]
    key = log.pointer_key(rec)
    parsed = layout.parse_session_index_key(key)
    assert parsed is not None
    forged = layout.session_index_key(parsed[0], parsed[1] + 1, *parsed[2:])
    raw_set(log.store, forged, await raw_get(log.store, key))
    raw_delete(log.store, key)
    result = await verify(log)
    assert [(p.what, p.where) for p in result.problems] == [("index_orphan", forged), ("index_missing", key)]


def catalog_of(log: Log, stream: str) -> tuple[str, str]:
    """(segment key, catalog key) of a segment of `stream` that starts sessions."""
    for seg in log.segments_of(stream):
        for okey, _ in log.index_objects(seg):
            if okey.startswith(layout.CATALOG):
                return seg, okey
    raise AssertionError("no session starts")


async def test_catalog_object_edited(log):
    seg, key = catalog_of(log, STREAM_B)
    raw_set(log.store, key, (await raw_get(log.store, key)).replace(b'"subject":"alice"', b'"subject":"mallory"'))
    result = await verify(log)
    assert result.lines() == [f"INVALID: catalog_mismatch {key} (differs from what {seg} implies)", f"{N}/{N} valid"]


async def test_catalog_object_deleted(log):
    _, key = catalog_of(log, STREAM_A)
    raw_delete(log.store, key)
    result = await verify(log)
    assert [(p.what, p.where) for p in result.problems] == [("catalog_missing", key)]


async def test_catalog_object_orphaned(log):
    seg, key = catalog_of(log, STREAM_A)
    body = await raw_get(log.store, key)
    recs = log.segments[seg]
    # a listing entry that points at a segment start without one, and one that names no segment at all
    elsewhere = layout.catalog_key("2025-01-01T09:00:00.000Z", STREAM_A, recs[0].stream_seq)
    nowhere = layout.catalog_key("2025-01-01T09:00:00.000Z", STREAM_A, 9999)
    raw_set(log.store, elsewhere, body)
    raw_set(log.store, nowhere, body)
    result = await verify(log)
    assert [(p.what, p.where) for p in result.problems] == [("catalog_orphan", elsewhere), ("catalog_orphan", nowhere)]
    assert result.problems[1].detail == f"the store holds no segment of stream {STREAM_A} starting at 9999"


async def test_deleted_digest_and_index_pointer(log):
    raw_delete(log.store, layout.digest_key(STREAM_A, 2))
    rec = log.of(STREAM_B)[1]
    ikey = log.pointer_key(rec)
    raw_delete(log.store, ikey)
    result = await verify(log)
    assert f"INVALID: missing_digest stream {STREAM_A} digest 2 (deleted or never stored)" in result.lines()
    assert found(result, "index_missing") == [ikey]


async def test_foreign_objects_are_reported(log):
    odd = ["streams/x/notes.txt", layout.segment_key(STREAM_A, 999, 999) + "x",
           f"{layout.segment_prefix(STREAM_A)}{5:020d}-{3:020d}.jsonl",  # last before first
           "sessions/s-alpha/notes", "catalog/today"]
    for key in odd:
        raw_set(log.store, key, b"{}")
    result = await verify(log)
    assert sorted(found(result, "unexpected_object")) == sorted(odd) and whats(result) == {"unexpected_object"}


# -- chains -------------------------------------------------------------------------------------------------------
async def test_inserted_record_mid_stream(log):
    # the forger plants a record before stream B's 4th, shifts the rest up by one and re-chains them (no signing
    # key needed for that), re-cutting the segments from the one holding the 4th record on
    victim = log.of(STREAM_B)[3]
    seg, vi = log.segment_of(victim)
    start = log.segments[seg][0].stream_seq
    objs = [decode(await log.read_record(r)) for r in log.of(STREAM_B)[start - 1:]]
    forged = {**objs[vi], "record_id": "forged", "masked_request": "planted"}
    chain = objs[:vi] + [forged] + objs[vi:]
    prev = objs[vi]["prev"]
    for i, o in enumerate(chain[vi:], start=vi):
        o.update(stream_seq=start + i, prev=prev)
        o["hash"] = prev = hash_of(o)
    for key in log.segments_of(STREAM_B):
        if key >= seg:
            raw_delete(log.store, key)
    for i in range(0, len(chain), 3):
        part = chain[i:i + 3]
        set_segment_lines(log.store, layout.segment_key(STREAM_B, part[0]["stream_seq"], part[-1]["stream_seq"]),
                          [canonical_bytes(o) for o in part])
    result = await verify(log)
    assert {"digest_mismatch", "session_fork", "broken_session_prev"} <= whats(result)
    assert not {"broken_prev", "record_misplaced", "hash_mismatch", "segment_malformed"} & whats(result)


async def test_record_appended_after_the_last_digest_is_unanchored(log):
    rec = await log.append(1, "s-alpha")  # a writer (or forger) adds a record no digest covers
    result = await verify(log)
    assert result.ok and not result.clean
    line = f"INVALID: unanchored stream {STREAM_B} seq {rec.stream_seq} (not covered by any valid digest)"
    assert result.lines() == [line, f"{N + 1}/{N + 1} valid"]
    assert result.problems[0].warning


async def test_duplicated_record_renumbered_and_rehashed_is_a_fork(log):
    victim = log.of(STREAM_A)[2]
    seq = len(log.of(STREAM_A)) + 1
    obj = decode(await log.read_record(victim))
    obj["stream_seq"] = seq
    obj["hash"] = hash_of(obj)
    dup = layout.segment_key(STREAM_A, seq, seq)
    set_segment_lines(log.store, dup, [canonical_bytes(obj)])
    result = await verify(log)
    assert set(found(result, "fork")) == {log.where(victim), f"{dup}#{seq}"}
    assert found(result, "session_fork") == [log.where(victim), f"{dup}#{seq}"]


async def test_fork_two_writers_with_unshared_session_heads(tmp_path):
    # two replicas that do not share session heads both write "s-alpha": same session_seq, two records
    log = await build_log(MemoryStore(), n=12, heads=[MemorySessionHeads(), MemorySessionHeads()])
    result = await verify(log)
    assert "session_fork" in whats(result)
    assert whats(result) <= {"session_fork", "broken_session_prev", "digest_mismatch", "unanchored"}


# -- truncation ---------------------------------------------------------------------------------------------------
async def _truncate_tail(log: Log, stream: str, records: int, *, careful: bool = True) -> None:
    """Delete the last `records` records of `stream`; a `careful` attacker also removes their index objects and
    every digest covering them, and re-cuts a segment that straddles the cut (with consistent index objects)."""
    keep = len(log.of(stream)) - records
    for key in log.segments_of(stream):
        recs = log.segments[key]
        if recs[-1].stream_seq <= keep:
            continue
        if careful:
            for okey, _ in log.index_objects(key):
                raw_delete(log.store, okey)
        raw_delete(log.store, key)
        kept = [r for r in recs if r.stream_seq <= keep]
        if kept:
            await write_records(log.store, kept)
    if careful:
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
    assert found(result, "truncated_stream") == [f"stream {STREAM_A} seq {kept + 3}"]
    assert not result.ok and result.summary() == f"{N - 3}/{N} valid"


async def test_truncated_session_tail(log):
    # the last record of stream A is the last of s-gamma; cut only that one
    last = log.of(STREAM_A)[-1]
    assert last.session_id == "s-gamma" and last.session_seq == max(r.session_seq for r in log.records
                                                                    if r.session_id == "s-gamma")
    await _truncate_tail(log, STREAM_A, 1)
    result = await verify(log)
    assert f"session s-gamma seq {last.session_seq}" in found(result, "truncated_session")


async def test_records_deleted_but_digests_left_show_truncation_without_anchor(log):
    await _truncate_tail(log, STREAM_B, 2, careful=False)
    result = await verify(log, anchors=False)
    assert set(found(result, "truncated_stream")) == {f"stream {STREAM_B} seq {len(log.of(STREAM_B))}"}


async def test_whole_stream_deleted_is_caught_by_its_anchor(log):
    for key in await log.store.list(layout.stream_prefix(STREAM_A), limit=10_000):
        raw_delete(log.store, key)
    for key in await log.store.list("sessions/", limit=10_000) + await log.store.list("catalog/", limit=10_000):
        if STREAM_A in key:
            raw_delete(log.store, key)
    result = await verify(log)
    assert {"truncated_digests", "truncated_stream"} <= whats(result)
    assert result.summary() == f"{len(log.of(STREAM_B))}/{N} valid"


# -- digests and anchors ------------------------------------------------------------------------------------------
async def test_modified_byte_in_digest(log):
    key = layout.digest_key(STREAM_A, 2)
    raw = await raw_get(log.store, key)
    raw_set(log.store, key, raw.replace(b'"last_seq":', b'"last_seq":1', 1))
    result = await verify(log)
    assert f"INVALID: bad_signature {key} (key id {key_id(log.key.public_key())})" in result.lines()
    assert result.digests_valid == result.digests_checked - 1


async def test_digest_resigned_with_another_key(log):
    key = layout.digest_key(STREAM_B, 2)
    attacker = generate_key()
    forged = await rewrite(log.store, key, lambda o: None)
    raw_set(log.store, key, canonical_bytes(sign_digest({**forged, "last_seq": 1}, attacker)))
    result = await verify(log)
    assert found(result, "unknown_key") == [key]
    # ...and keeping the genuine key id does not help
    resigned = sign_digest(forged, attacker)
    resigned["public_key_id"] = forged["public_key_id"]
    raw_set(log.store, key, canonical_bytes(resigned))
    assert found(await verify(log), "bad_signature") == [key]


async def test_forged_anchor_is_refused(log):
    anchor = {**log.anchors[0], "last_seq": 1}
    result = await verify_store(log.store, public_keys=log.public_keys, anchors=[anchor])
    assert "anchor_bad_signature" in whats(result)


async def test_without_public_keys_nothing_is_anchored(log):
    result = await verify(log, keys=[], anchors=False)
    assert "unknown_key" in whats(result) and "unanchored" in whats(result)


async def test_segment_vanishing_between_listing_and_reading():
    log = await build_log(MemoryStore(), n=N)
    key = segment_with(log, STREAM_A, 2)

    class Vanishing(MemoryStore):
        async def get(self, k):
            return None if k == key else await super().get(k)

    store = Vanishing()
    for k in await log.store.list("", limit=10_000):
        store.tamper_set(k, await raw_get(log.store, k))
    result = await verify_store(store, public_keys=log.public_keys, anchors=log.anchors)
    recs = log.segments[key]
    assert found(result, "segment_vanished") == [key]
    assert found(result, "missing_record") == [f"stream {STREAM_A} seq {recs[0].stream_seq}..{recs[-1].stream_seq}"]
    assert not {w for w in whats(result) if w.startswith(("index_", "catalog_"))}  # not a second report


async def test_segments_read_in_many_batches(log, monkeypatch):
    from gateway.audit import verify as verify_module

    monkeypatch.setattr(verify_module, "BATCH_RECORDS", 3)
    assert len(verify_module._segment_batches([(k, "s", 1, 1) for k in "abcdefg"])) == 3
    assert (await verify(log)).lines() == [f"{N}/{N} valid"]
    victim = log.of(STREAM_B)[-1]
    await log.set_record(victim, b"{}")
    result = await verify(log)
    assert found(result, "record_malformed") == [log.where(victim)]


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
