"""The verifier's checks (see `verify.py` for the API and the list of problems). One `Checker` accumulates state and
problems: segments are checked as they are read (`check_segment`), keeping only each record's links (`Rec`) and the
index objects its segment implies; the chain, index, digest and anchor checks run once everything is read."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from gateway.audit import layout
from gateway.audit.canonical import CanonicalError, _check, decode, encode
from gateway.audit.digest import DIGEST_FIELDS, check_signature
from gateway.audit.record import Record
from gateway.audit.segment import Meta, index_objects, meta_of, unpack

_DIGEST_TYPES: dict[str, Any] = {
    "v": int, "stream_id": str, "digest_seq": int, "last_seq": int, "last_hash": (str, type(None)),
    "sessions_touched": dict, "prev_digest_signature": (str, type(None)), "created_at": str,
    "public_key_id": str, "signature": str,
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding; `str()` is the `INVALID: <what> <where>` line."""

    what: str
    """Kind: `hash_mismatch`, `broken_prev`, `fork`, `unanchored`, ..."""
    where: str
    """Object key, `<segment key>#<stream_seq>` (a record's line), `stream <id> seq <n>[..<m>]`,
    `session <id> seq <n>`, `anchor <stream> digest <n>`."""
    detail: str = ""
    """Human explanation."""
    warning: bool = False
    """Warning level (listed, but `VerifyResult.ok` stays True)."""

    def __str__(self) -> str:
        return f"INVALID: {self.what} {self.where}" + (f" ({self.detail})" if self.detail else "")


@dataclass(slots=True)
class Rec:
    """What the chain checks need from one stored record. `stream_id`/`seq` are what the record claims; `segment`
    and `pos` say where it is stored (line `pos - first` of the segment, which should hold `stream_seq` `pos`)."""

    segment: str
    pos: int
    stream_id: str
    seq: int
    prev: str | None
    hash: str
    session_id: str
    session_seq: int
    session_prev: str | None

    @property
    def key(self) -> str:
        """Where problems name it: `<segment key>#<pos>` (built on demand: most records are never reported)."""
        return f"{self.segment}#{self.pos}"


def _ranges(nums: list[int]) -> list[str]:
    """[1, 2, 3, 7] → ["1..3", "7"]."""
    spans: list[list[int]] = []
    for n in nums:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return [str(a) if a == b else f"{a}..{b}" for a, b in spans]


def _gaps(present: Any) -> list[tuple[int, int]]:
    """The (first, last) runs of 1..max(present) absent from `present` (from the sorted numbers, not by counting up
    to the maximum: a forged sequence number may be huge)."""
    gaps, top = [], 0
    for n in sorted(present):
        if n > top + 1:
            gaps.append((top + 1, n - 1))
        top = max(top, n)
    return gaps


def _span(gap: tuple[int, int]) -> str:
    return str(gap[0]) if gap[0] == gap[1] else f"{gap[0]}..{gap[1]}"


def _hash_matches(raw: bytes, claimed: Any) -> bool:
    """Fast path of the hash check for canonical bytes: the hashed bytes are `raw` without its top-level
    ``"hash":"<claimed>"`` member, so cut that out instead of re-encoding the record. True only when the result
    hashes to `claimed`. Removing the wrong occurrence (a nested object with a "hash" key and the same value) cannot
    produce a false True, as the remaining bytes would still contain `claimed`: a hash of bytes containing itself.
    Callers take False as "compute it the slow way"."""
    if type(claimed) is not str or len(claimed) != 64:
        return False
    member = b'"hash":"' + claimed.encode("utf-8") + b'"'
    i = raw.rfind(member)  # the top-level member is the last one in a valid record (keys after it hold none)
    if i <= 0:
        return False
    j = i + len(member)
    if raw[i - 1:i] == b",":
        i -= 1
    elif raw[j:j + 1] == b",":
        j += 1
    return hashlib.sha256(raw[:i] + raw[j:]).hexdigest() == claimed


def _meta(rec: Record, size: int) -> Meta:
    """`segment.meta_of` for a record already parsed and validated (the verifier parses each record once)."""
    return Meta(rec.stream_id, rec.stream_seq, rec.session_id, rec.session_seq, rec.hash, rec.time,
                rec.principal.sub if rec.principal is not None else None, size)


class Checker:
    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.keys = keys
        self.problems: list[Problem] = []
        self.bad_records: set[str] = set()
        self.bad_digests: set[str] = set()
        self.lines = 0
        """Record lines checked."""
        self.streams: dict[str, dict[int, Rec]] = {}
        """stream_id → stream_seq → the first record found claiming it."""
        self.conflicts: dict[str, list[Rec]] = {}
        """Further records claiming a stream_seq already taken by a *different* record (fork candidates)."""
        self.sessions: dict[str, dict[int, list[Rec]]] = {}
        self.digests: dict[str, dict[int, tuple[str, dict[str, Any], bool]]] = {}  # (key, digest, trusted)
        self.anchored: dict[str, int] = {}
        self.segments: set[tuple[str, int, int]] = set()
        """(stream_id, first, last) of every segment read; `starts` holds their (stream_id, first)."""
        self.starts: set[tuple[str, int]] = set()
        self.unsound: set[tuple[str, int, int]] = set()
        """Segments whose index objects cannot be derived (unreadable, malformed, a record unparsable or out of
        place): their problems are reported, so objects naming them are not compared. `unsound_starts` holds
        their (stream_id, first), which is what a catalog key names."""
        self.unsound_starts: set[tuple[str, int]] = set()
        self.expected_index: dict[str, tuple[bytes | None, str]] = {}
        self.expected_catalog: dict[str, tuple[bytes | None, str]] = {}
        """Index and catalog objects the sound segments imply: key → (body, segment key); body None when two
        overlapping segments imply different bodies (the overlap is reported; the object is not compared)."""
        self.gap_count = 0
        """Records missing inside streams (below a stream's highest stored record)."""
        self.cut: dict[str, int] = {}
        """Highest stream_seq a digest or anchor covers, per stream (beyond the store's end: a truncated tail)."""

    def problem(self, what: str, where: str, detail: str = "", *, record: str | None = None,
                digest: str | None = None, warning: bool = False) -> None:
        self.problems.append(Problem(what, where, detail, warning))
        if record:
            self.bad_records.add(record)
        if digest:
            self.bad_digests.add(digest)

    @property
    def missing(self) -> int:
        """Records known to be missing: stream gaps, and tails cut below a digest or anchor."""
        cut = sum(max(0, top - max(self.streams.get(sid) or [0])) for sid, top in self.cut.items())
        return self.gap_count + cut

    # -- segments and records -------------------------------------------------------------------------------------
    def split_segment(self, key: str, first: int, last: int, body: bytes | None) -> tuple[list[bytes], bool] | None:
        """The segment's lines and whether its framing is sound (newline-terminated, one line per record of its
        range); framing problems are reported, and the lines there are still returned for checking."""
        if body is None:
            self.problem("segment_vanished", key, "listed but unreadable")
            return None
        try:
            lines, sound = unpack(body), True
        except ValueError:
            lines, sound = body.split(b"\n"), False
            self.problem("segment_malformed", key, "does not end with a newline")
        if len(lines) != last - first + 1:
            sound = False
            self.problem("segment_malformed", key, f"{len(lines)} lines for records {first}..{last}")
        return lines, sound

    def check_segment(self, key: str, sid: str, first: int, last: int, body: bytes | None, *,
                      session: str | None = None) -> int:
        """Check segment `first`..`last` of `sid`: line i must be record `first + i`. Files every record in the
        chains, and notes the index objects a sound segment implies. Returns the number of lines checked.

        With `session` (per-session verification) only that session's records are checked and reported: lines of
        other sessions are context, read for the index objects only (a line that names no session at all is
        checked: it cannot be ruled out as the session's)."""
        self.segments.add((sid, first, last))
        self.starts.add((sid, first))
        split = self.split_segment(key, first, last, body)
        if split is None:
            self.mark_unsound(sid, first, last)
            return 0
        lines, sound = split
        metas: list[Meta] = []
        checked = 0
        context_ok = True  # per-session mode: other sessions' lines in their places
        for i, raw in enumerate(lines):
            pos = first + i
            if session is not None:
                try:
                    meta = meta_of(raw)
                except ValueError:
                    meta = None
                if meta is not None and meta.session_id != session:
                    metas.append(meta)
                    context_ok = context_ok and (meta.stream_id, meta.stream_seq) == (sid, pos)
                    continue
            checked += 1
            rec, meta = self.check_record(key, pos, sid, raw)
            if rec is None or meta is None:
                sound = False
                continue
            sound = sound and (rec.stream_id, rec.seq) == (sid, pos)
            self.file(rec)
            metas.append(meta)
        self.lines += checked
        if sound and not context_ok:
            self.context_unusable(key, "another session's record in it is not in its place")
            sound = False
        if sound:
            self.expect_index(key, sid, first, last, metas, session=session)
        else:
            self.mark_unsound(sid, first, last)
        return checked

    def context_unusable(self, key: str, why: str) -> None:
        """Per-session mode: the session's index objects for segment `key` cannot be checked because of other
        sessions' records in it — an error, never a silent skip (the full verify names the record)."""
        self.problem("segment_unusable", key, f"{why}, so this session's index for it cannot be checked "
                     "(the full `gateway audit verify` names it)")

    def mark_unsound(self, sid: str, first: int, last: int) -> None:
        """Objects naming this segment are not compared with it (its problems are reported)."""
        self.unsound.add((sid, first, last))
        self.unsound_starts.add((sid, first))

    def check_record(self, segment: str, pos: int, sid: str, raw: bytes) -> tuple[Rec | None, Meta | None]:
        """Check one line of `segment`, which should hold record `pos` of stream `sid`: canonical bytes, hash,
        schema, position. Returns its links and index metadata, (None, None) if it is not a valid record."""
        try:
            obj = decode(raw)
        except orjson.JSONDecodeError:
            obj = None
        if type(obj) is not dict:
            where = f"{segment}#{pos}"
            self.problem("record_unreadable", where, "not a JSON object", record=where)
            return None, None
        claimed = obj.get("hash")
        try:
            canonical = encode(obj) == raw
            intact = canonical and _hash_matches(raw, claimed)
            if not intact:
                intact = claimed == hashlib.sha256(encode({k: v for k, v in obj.items() if k != "hash"})).hexdigest()
        except orjson.JSONEncodeError:
            canonical, intact = False, False
        if not canonical:
            where = f"{segment}#{pos}"
            self.problem("record_not_canonical", where, "bytes differ from the canonical encoding", record=where)
        if not intact:
            where = f"{segment}#{pos}"
            self.problem("hash_mismatch", where, "content does not match its hash", record=where)
        try:
            rec = Record.model_validate(obj)
            _check(obj.get("detail"), "detail")
        except (ValidationError, CanonicalError) as e:
            where = f"{segment}#{pos}"
            self.problem("record_malformed", where, str(e).splitlines()[0][:200], record=where)
            return None, None
        r = Rec(segment, pos, rec.stream_id, rec.stream_seq, rec.prev, rec.hash, rec.session_id, rec.session_seq,
                rec.session_prev)
        if rec.stream_id != sid or rec.stream_seq != pos:
            self.problem("record_misplaced", r.key, f"claims stream {rec.stream_id} seq {rec.stream_seq}",
                         record=r.key)
        return r, _meta(rec, len(raw))

    def file(self, r: Rec) -> None:
        """Enter a record in the chain checks under the stream and seq it *claims*, so a line stored out of place
        is reported once (`record_misplaced`), not again as a break in the chain. A second record claiming a seq is
        a `duplicate_record`; an identical copy is one record (no fork), a different one takes part in the fork
        checks."""
        recs = self.streams.setdefault(r.stream_id, {})
        first = recs.setdefault(r.seq, r)
        if first is not r:
            same = first.hash == r.hash
            self.problem("duplicate_record", r.key, f"stream {r.stream_id} seq {r.seq} is also at {first.key}"
                         + ("" if same else ", a different record"), record=r.key)
            if same:
                return
            self.conflicts.setdefault(r.stream_id, []).append(r)
        self.sessions.setdefault(r.session_id, {}).setdefault(r.session_seq, []).append(r)

    def expect_index(self, key: str, sid: str, first: int, last: int, metas: list[Meta], *,
                     session: str | None = None) -> None:
        """Note the index and catalog objects segment `key` (whose records are `metas`, one per line) implies
        (`segment.index_objects`). With `session`, only that session's records are reported."""
        try:
            objects = index_objects(metas)
        except ValueError:  # a field the layout cannot spell (empty session id, time without ms, ...)
            own_reported = False
            for i, m in enumerate(metas):
                if session is not None and m.session_id != session:
                    continue
                try:
                    index_objects([m])
                except ValueError as e:
                    where = f"{key}#{first + i}"
                    self.problem("record_malformed", where, f"cannot be indexed: {e}", record=where)
                    own_reported = True
            if session is not None and not own_reported:
                self.context_unusable(key, "another session's record in it cannot be indexed")
            self.mark_unsound(sid, first, last)
            return
        for okey, body in objects:
            expected = self.expected_catalog if okey.startswith(layout.CATALOG) else self.expected_index
            known = expected.get(okey)
            expected[okey] = (body if known is None or known[0] == body else None, key)

    def check_index_object(self, key: str, body: bytes | None) -> None:
        """A listed `sessions/` object must be exactly a pointer some sound segment implies. (An expected key is
        well-formed by construction: only the others are parsed.)"""
        if self._matches(key, body, self.expected_index, "index"):
            return
        parsed = layout.parse_session_index_key(key)
        if parsed is None:
            self.problem("unexpected_object", key)
            return
        segment = parsed[2], parsed[3], parsed[4]
        self._orphan("index", key, segment in self.unsound, segment in self.segments,
                     f"segment {layout.segment_key(*segment)}")

    def check_catalog_object(self, key: str, body: bytes | None) -> None:
        """A listed `catalog/` object must be exactly one some sound segment implies (else listing misleads)."""
        if self._matches(key, body, self.expected_catalog, "catalog"):
            return
        parsed = layout.parse_catalog_key(key)
        if parsed is None:
            self.problem("unexpected_object", key)
            return
        start = parsed[1], parsed[2]
        self._orphan("catalog", key, start in self.unsound_starts, start in self.starts,
                     f"segment of stream {start[0]} starting at {start[1]}")

    def _matches(self, key: str, body: bytes | None, expected: dict[str, tuple[bytes | None, str]],
                 kind: str) -> bool:
        """False if no segment implies `key`; else True, after reporting a body that differs."""
        want = expected.get(key)
        if want is None:
            return False
        if want[0] is not None and body != want[0]:
            self.problem(f"{kind}_mismatch", key, f"differs from what {want[1]} implies")
        return True

    def _orphan(self, kind: str, key: str, unsound: bool, held: bool, named: str) -> None:
        if not unsound:  # else the problems of the segment it names are reported already
            self.problem(f"{kind}_orphan", key, f"{named} implies no such object" if held
                         else f"the store holds no {named}")

    def check_index_complete(self, listed: set[str]) -> None:
        for key in sorted(self.expected_index.keys() - listed):
            self.problem("index_missing", key, f"{self.expected_index[key][1]} holds records of the session")

    def check_catalog_complete(self, listed: set[str]) -> None:
        for key in sorted(self.expected_catalog.keys() - listed):
            self.problem("catalog_missing", key, f"{self.expected_catalog[key][1]} starts sessions (unlisted)")

    # -- chains -------------------------------------------------------------------------------------------------
    def check_streams(self) -> None:
        for sid, recs in sorted(self.streams.items()):
            for gap in _gaps(recs):
                self.gap_count += gap[1] - gap[0] + 1
                self.problem("missing_record", f"stream {sid} seq {_span(gap)}", "deleted or never stored")
            by_prev: dict[str | None, list[Rec]] = {}
            for r in [*(recs[seq] for seq in sorted(recs)), *self.conflicts.get(sid, ())]:
                by_prev.setdefault(r.prev, []).append(r)
                before = recs.get(r.seq - 1)
                if (r.seq == 1 and r.prev is not None) or (before is not None and r.prev != before.hash):
                    self.problem("broken_prev", r.key, f"prev does not match the hash of seq {r.seq - 1}",
                                 record=r.key)
            for prev, claimants in by_prev.items():
                if len(claimants) > 1:
                    for r in claimants:
                        self.problem("fork", r.key, f"{len(claimants)} records claim prev {str(prev)[:16]}",
                                     record=r.key)

    def check_sessions(self) -> None:
        for session_id, seqs in sorted(self.sessions.items()):
            for gap in _gaps(seqs):
                self.problem("session_gap", f"session {session_id} seq {_span(gap)}",
                             "no record with this session_seq")
            for s in sorted(seqs):
                recs, before = seqs[s], seqs.get(s - 1)
                if len(recs) > 1:
                    for r in recs:
                        self.problem("session_fork", r.key, f"{len(recs)} records claim session "
                                     f"{session_id} seq {s}", record=r.key)
                for r in recs:
                    if (s == 1 and r.session_prev is not None) or (
                            before and len(before) == 1 and r.session_prev != before[0].hash):
                        self.problem("broken_session_prev", r.key, f"session_prev does not match session "
                                     f"{session_id} seq {s - 1}", record=r.key)

    # -- digests ------------------------------------------------------------------------------------------------
    def check_digest_object(self, key: str, sid: str, dseq: int, raw: bytes | None) -> None:
        try:
            d = decode(raw) if raw is not None else None
            assert type(d) is dict and d.keys() == DIGEST_FIELDS and all(
                isinstance(d[f], t) and type(d[f]) is not bool for f, t in _DIGEST_TYPES.items())
            canonical = encode(d) == raw
        except (orjson.JSONDecodeError, orjson.JSONEncodeError, AssertionError):
            self.problem("digest_unreadable", key, "not a digest object", digest=key)
            return
        if not canonical:
            self.problem("digest_not_canonical", key, "bytes differ from the canonical encoding", digest=key)
        bad_sig = check_signature(d, self.keys)
        if bad_sig:
            self.problem(bad_sig, key, f"key id {d.get('public_key_id')}", digest=key)
        if (d["stream_id"], d["digest_seq"]) != (sid, dseq):
            self.problem("digest_misplaced", key, f"claims stream {d['stream_id']} digest {d['digest_seq']}",
                         digest=key)
        self.digests.setdefault(sid, {})[dseq] = (key, d, canonical and not bad_sig)

    def walk_digest_chains(self) -> Iterator[tuple[str, str, dict[str, Any], bool]]:
        """Check each stream's digest chain (gaps, broken links, regressions) and yield ``(stream_id, key,
        digest, trusted)`` in order, for the caller to check what each digest claims."""
        for sid, ds in sorted(self.digests.items()):
            for gap in _gaps(ds):
                self.problem("missing_digest", f"stream {sid} digest {_span(gap)}", "deleted or never stored")
            for dseq in sorted(ds):
                key, d, trusted = ds[dseq]
                before = ds.get(dseq - 1)
                if (dseq == 1 and d["prev_digest_signature"] is not None) or (
                        before and d["prev_digest_signature"] != before[1]["signature"]):
                    self.problem("broken_digest_chain", key, "prev_digest_signature does not match digest "
                                 f"{dseq - 1}", digest=key)
                    trusted = False
                if before and before[2] and d["last_seq"] < before[1]["last_seq"]:
                    self.problem("digest_regressed", key, "last_seq went backwards", digest=key)
                yield sid, key, d, trusted

    def check_digest_chains(self) -> None:
        for sid, key, d, trusted in self.walk_digest_chains():
            if self._check_claims(d, key) and trusted:
                self.anchored[sid] = max(self.anchored.get(sid, 0), d["last_seq"])

    def _check_claims(self, d: dict[str, Any], where: str, *, stored: bool = True) -> bool:
        """Do the records a digest (or anchor) vouches for exist with the hashes it names?"""
        ok = True
        mark = where if stored else None
        sid, last_seq = d.get("stream_id"), d.get("last_seq")
        recs = self.streams.get(sid, {})  # type: ignore[arg-type]
        if isinstance(last_seq, int) and last_seq > 0:
            r = recs.get(last_seq)
            if r is None:
                ok = False
                top = max(recs, default=0)
                if last_seq > top:
                    self.cut[sid] = max(self.cut.get(sid, 0), last_seq)  # type: ignore[index]
                    self.problem("truncated_stream", f"stream {sid} seq {last_seq}", f"{where} covers it; the "
                                 f"store ends at seq {top}", digest=mark)
            elif r.hash != d.get("last_hash"):
                ok = False
                self.problem("digest_mismatch", where, f"last_hash differs from {r.key}", digest=mark)
        for session_id, entry in (d.get("sessions_touched") or {}).items():
            sseq, h = entry if isinstance(entry, list) and len(entry) == 2 else (None, None)
            sseq = sseq if type(sseq) is int else None
            present = self.sessions.get(session_id, {})
            if not any(r.hash == h for r in present.get(sseq, [])):  # type: ignore[arg-type]
                ok = False
                if not present.get(sseq):  # type: ignore[arg-type]
                    if not isinstance(sseq, int) or sseq > max(present, default=0):
                        self.problem("truncated_session", f"session {session_id} seq {sseq}",
                                     f"{where} covers it; the store ends at seq {max(present, default=0)}",
                                     digest=mark)
                else:
                    self.problem("digest_mismatch", where, f"session {session_id} seq {sseq} hash differs",
                                 digest=mark)
        return ok

    def check_anchor(self, a: dict[str, Any]) -> None:
        where = self.compare_anchor(a)
        if where is not None and self._check_claims(a, where, stored=False):
            self.anchored[a["stream_id"]] = max(self.anchored.get(a["stream_id"], 0), a["last_seq"])

    def compare_anchor(self, a: dict[str, Any]) -> str | None:
        """Check an externally held digest's signature and that the store still holds it unchanged. Returns
        where to report its claims, or None when it does not verify (its claims then count for nothing)."""
        sid, dseq = a.get("stream_id"), a.get("digest_seq")
        where = f"anchor {sid} digest {dseq}"
        bad_sig = check_signature(a, self.keys) if a.keys() == DIGEST_FIELDS else "unreadable"
        if bad_sig:
            self.problem(f"anchor_{bad_sig}", where, "the externally held digest does not verify")
            return None
        stored = self.digests.get(sid, {}).get(dseq)  # type: ignore[arg-type]
        if stored is None:
            self.problem("truncated_digests", f"stream {sid} digest {dseq}", "held outside the store, missing in it")
        elif stored[1] != a:
            self.problem("anchor_mismatch", stored[0], "stored digest differs from the one held outside",
                         digest=stored[0])
        return where

    def check_unanchored(self) -> None:
        for sid, recs in sorted(self.streams.items()):
            loose = sorted(n for n in recs if n > self.anchored.get(sid, 0))
            for span in _ranges(loose):
                self.problem("unanchored", f"stream {sid} seq {span}", "not covered by any valid digest",
                             warning=True)
