"""The verifier's checks (see `verify.py` for the API). One `Checker` accumulates state and problems."""
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
from gateway.audit.chain import objects_for
from gateway.audit.digest import DIGEST_FIELDS, check_signature
from gateway.audit.record import Record

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
    """Object key, or `stream <id> seq <n>[..<m>]`, `session <id> seq <n>`, `anchor <stream> digest <n>`."""
    detail: str = ""
    """Human explanation."""
    warning: bool = False
    """Warning level (listed, but `VerifyResult.ok` stays True)."""

    def __str__(self) -> str:
        return f"INVALID: {self.what} {self.where}" + (f" ({self.detail})" if self.detail else "")


@dataclass(slots=True)
class Rec:
    """What the chain checks need from one stored record. `seq` is its position by key."""

    key: str
    stream_id: str
    seq: int
    prev: str | None
    hash: str
    session_id: str
    session_seq: int
    session_prev: str | None


def _ranges(nums: list[int]) -> list[str]:
    """[1, 2, 3, 7] → ["1..3", "7"]."""
    spans: list[list[int]] = []
    for n in nums:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return [str(a) if a == b else f"{a}..{b}" for a, b in spans]


def _missing(present: Any, upto: int) -> list[int]:
    return [n for n in range(1, upto + 1) if n not in present]


class Checker:
    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.keys = keys
        self.problems: list[Problem] = []
        self.bad_records: set[str] = set()
        self.bad_digests: set[str] = set()
        self.streams: dict[str, dict[int, Rec]] = {}
        self.sessions: dict[str, dict[int, list[Rec]]] = {}
        self.digests: dict[str, dict[int, tuple[str, dict[str, Any], bool]]] = {}  # (key, digest, trusted)
        self.anchored: dict[str, int] = {}
        self.catalog: dict[str, bytes] = {}
        """The catalog entry each session's first record implies (key → bytes)."""
        self.missing: set[tuple[str, int]] = set()
        """(stream_id, seq) of records known to be missing: stream gaps and tails cut below a digest/anchor."""

    def problem(self, what: str, where: str, detail: str = "", *, record: str | None = None,
                digest: str | None = None, warning: bool = False) -> None:
        self.problems.append(Problem(what, where, detail, warning))
        if record:
            self.bad_records.add(record)
        if digest:
            self.bad_digests.add(digest)

    # -- records ------------------------------------------------------------------------------------------------
    def check_record(self, key: str, sid: str, seq: int, raw: bytes | None) -> Rec | None:
        if raw is None:
            self.problem("record_vanished", key, "listed but unreadable", record=key)
            return None
        try:
            obj = decode(raw)
            assert type(obj) is dict
        except (orjson.JSONDecodeError, AssertionError):
            self.problem("record_unreadable", key, "not a JSON object", record=key)
            return None
        claimed = obj.get("hash")
        try:
            canonical = encode(obj) == raw
            actual = hashlib.sha256(encode({k: v for k, v in obj.items() if k != "hash"})).hexdigest()
        except orjson.JSONEncodeError:
            canonical, actual = False, None
        if not canonical:
            self.problem("record_not_canonical", key, "bytes differ from the canonical encoding", record=key)
        if claimed != actual:
            self.problem("hash_mismatch", key, "content does not match its hash", record=key)
        try:
            rec = Record.model_validate(obj)
            _check(obj.get("detail"), "detail")
        except (ValidationError, CanonicalError) as e:
            self.problem("record_malformed", key, str(e).splitlines()[0][:200], record=key)
            return None
        if (rec.stream_id, rec.stream_seq) != (sid, seq):
            self.problem("record_misplaced", key, f"claims stream {rec.stream_id} seq {rec.stream_seq}", record=key)
        r = Rec(key, sid, seq, rec.prev, rec.hash, rec.session_id, rec.session_seq, rec.session_prev)
        if rec.session_seq == 1:
            for okey, data in objects_for(rec)[2:]:
                self.catalog[okey] = data
        self.sessions.setdefault(r.session_id, {}).setdefault(r.session_seq, []).append(r)
        return r

    def check_streams(self) -> None:
        seen: dict[str, Rec] = {}
        for sid, recs in sorted(self.streams.items()):
            gaps = _missing(recs, max(recs))
            self.missing.update((sid, n) for n in gaps)
            for gap in _ranges(gaps):
                self.problem("missing_record", f"stream {sid} seq {gap}", "deleted or never stored")
            by_prev: dict[str | None, list[Rec]] = {}
            for seq in sorted(recs):
                r = recs[seq]
                by_prev.setdefault(r.prev, []).append(r)
                before = recs.get(seq - 1)
                if (seq == 1 and r.prev is not None) or (before is not None and r.prev != before.hash):
                    self.problem("broken_prev", r.key, f"prev does not match the hash of seq {seq - 1}", record=r.key)
                if r.hash in seen:
                    self.problem("duplicate_record", r.key, f"same record as {seen[r.hash].key}", record=r.key)
                seen.setdefault(r.hash, r)
            for prev, claimants in by_prev.items():
                if len(claimants) > 1:
                    for r in claimants:
                        self.problem("fork", r.key, f"{len(claimants)} records claim prev {str(prev)[:16]}",
                                     record=r.key)

    def check_sessions(self) -> None:
        for session_id, seqs in sorted(self.sessions.items()):
            for gap in _ranges(_missing(seqs, max(seqs))):
                self.problem("session_gap", f"session {session_id} seq {gap}", "no record with this session_seq")
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

    def expected_index(self) -> dict[str, Rec]:
        """The session index pointer every stored record should have, by key."""
        expected: dict[str, Rec] = {}
        for recs in self.streams.values():
            for r in recs.values():
                try:
                    expected[layout.session_index_key(r.session_id, r.session_seq, r.stream_id, r.seq)] = r
                except ValueError as e:
                    self.problem("record_malformed", r.key, str(e), record=r.key)
        return expected

    def check_pointer(self, key: str, body: bytes | None, expected: dict[str, Rec]) -> None:
        if layout.parse_session_index_key(key) is None:
            self.problem("unexpected_object", key)
        elif key not in expected:
            self.problem("index_orphan", key, "index names a record the store does not hold")
        elif body != expected[key].hash.encode("ascii"):
            self.problem("index_mismatch", key, f"pointer hash differs from {expected[key].key}")

    def check_index_complete(self, listed: set[str], expected: dict[str, Rec]) -> None:
        for key in sorted(expected.keys() - listed):
            self.problem("index_missing", key, f"no session index entry for {expected[key].key}")

    def check_catalog(self, key: str, body: bytes | None) -> None:
        """A catalog entry must be exactly what its session's first record implies (else listing misleads)."""
        if layout.parse_catalog_key(key) is None:
            self.problem("unexpected_object", key)
        elif key not in self.catalog:
            self.problem("catalog_orphan", key, "catalog entry names no stored first record of a session")
        elif body != self.catalog[key]:
            self.problem("catalog_mismatch", key, "catalog entry differs from its session's first record")

    def check_catalog_complete(self, listed: set[str]) -> None:
        for key in sorted(self.catalog.keys() - listed):
            self.problem("catalog_missing", key, "a session's first record has no catalog entry (unlisted)")

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
            for gap in _ranges(_missing(ds, max(ds))):
                self.problem("missing_digest", f"stream {sid} digest {gap}", "deleted or never stored")
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
                if last_seq > max(recs, default=0):
                    self.missing.update((sid, n) for n in range(max(recs, default=0) + 1, last_seq + 1))
                    self.problem("truncated_stream", f"stream {sid} seq {last_seq}", f"{where} covers it; the "
                                 f"store ends at seq {max(recs, default=0)}", digest=mark)
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
