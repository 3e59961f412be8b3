"""The offline verifier: everything an investigator needs to trust (or distrust) a stored log.

`verify_store(store, public_keys=..., anchors=...)` reads the whole log through the `ObjectStore` interface and
checks: every record's canonical bytes and hash; each stream chain (no missing seq, `prev` links, no fork); each
session chain across streams (`session_seq` without gaps, `session_prev` links, no fork) and its index pointers;
each stream's digest chain (Ed25519 signature under a given public key, `prev_digest_signature` links) and what the
digests claim (the record at `last_seq` has `last_hash`; each touched session's record exists with that hash);
records after the last digest (`unanchored`, a warning); and, for each externally held latest digest (`anchors`),
that the store still holds that digest and everything it covers (tail truncation).

Output: a `VerifyResult`; `result.lines()` is one ``INVALID: <what> <where>[ — detail]`` line per problem, then the
summary ``<valid>/<checked> valid``: records valid (no error names them) out of records stored plus records known
to be missing (so a deletion shows as ``39/40 valid``).

Problem kinds (`Problem.what`):
  records   record_unreadable, record_not_canonical (a byte changed outside the content, e.g. whitespace),
            hash_mismatch, record_malformed (schema, floats), record_misplaced (its key ≠ its stream/seq),
            record_vanished
  streams   missing_record (deleted), broken_prev, fork (two records claim one prev), duplicate_record
  sessions  session_gap, session_fork (two records claim one session_seq), broken_session_prev,
            index_missing / index_orphan / index_mismatch (the `sessions/` pointers)
  digests   digest_unreadable, digest_not_canonical, unknown_key (signed by a key not given), bad_signature,
            digest_misplaced, missing_digest, broken_digest_chain, digest_regressed, digest_mismatch (a claimed
            hash differs), truncated_stream / truncated_session (a digest or anchor covers records the store
            lacks at its tail)
  anchors   anchor_unknown_key / anchor_bad_signature / anchor_unreadable, truncated_digests (the store lacks
            the anchored digest), anchor_mismatch
  other     unexpected_object; unanchored (warning: records after the last valid digest)
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import layout
from gateway.audit.canonical import decode
from gateway.audit.digest import key_ring
from gateway.audit.store import ObjectStore, list_all
from gateway.audit.verify_checks import Checker, Problem, Rec

__all__ = ["Problem", "Rec", "VerifyResult", "verify_store"]


@dataclass
class VerifyResult:
    """What the verifier found."""

    checked: int = 0
    """Records examined, plus records known to be missing (stream gaps, tails cut below a digest or anchor)."""
    valid: int = 0
    """Records no error names."""
    digests_checked: int = 0
    """Digests examined."""
    digests_valid: int = 0
    """Digests no error names."""
    problems: list[Problem] = field(default_factory=list)
    """Every problem, errors and warnings (`Problem.warning`), in discovery order."""

    @property
    def ok(self) -> bool:
        """No errors (warnings such as `unanchored` allowed)."""
        return not any(not p.warning for p in self.problems)

    @property
    def clean(self) -> bool:
        """No problems at all."""
        return not self.problems

    def summary(self) -> str:
        return f"{self.valid}/{self.checked} valid"

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems] + [self.summary()]

    def has(self, what: str) -> bool:
        """True if some problem is of kind `what` (tests, callers deciding on exit codes)."""
        return any(p.what == what for p in self.problems)


async def _fetch(store: ObjectStore, keys: list[str], concurrency: int) -> dict[str, bytes | None]:
    get_many = getattr(store, "get_many", None)
    if get_many is not None:  # optional batch read (FileStore): a few large thread hops beat one per object
        size = max(64, -(-len(keys) // max(1, concurrency)))
        chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
        results = await asyncio.gather(*(get_many(chunk) for chunk in chunks))
        return {k: v for chunk, res in zip(chunks, results) for k, v in zip(chunk, res)}
    out: dict[str, bytes | None] = {}
    it = iter(keys)

    async def worker() -> None:
        for key in it:
            out[key] = await store.get(key)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return out


def _batches(keys: list[str], size: int = 2000) -> list[list[str]]:
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def _as_digest(anchor: Mapping[str, Any] | bytes | str) -> dict[str, Any]:
    if isinstance(anchor, (bytes, str)):
        anchor = decode(anchor.encode() if isinstance(anchor, str) else anchor)
    return dict(anchor)


async def verify_store(
    store: ObjectStore,
    *,
    public_keys: Iterable[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey] = (),
    anchors: Iterable[Mapping[str, Any] | bytes | str] = (),
    concurrency: int = 32,
) -> VerifyResult:
    """Verify the whole log in `store`.

    `public_keys`: the keys digests may be signed with (a digest under any other key is `unknown_key`).
    `anchors`: latest digests held outside the store (per stream), to detect truncated tails.
    `concurrency`: parallel object reads (matters for S3).
    """
    c = Checker(key_ring(public_keys))
    stream_keys = await list_all(store, layout.STREAMS)
    index_keys = await list_all(store, layout.SESSIONS)

    record_keys: list[str] = []
    digest_keys: list[str] = []
    for key in stream_keys:
        if layout.parse_record_key(key):
            record_keys.append(key)
        elif layout.parse_digest_key(key):
            digest_keys.append(key)
        else:
            c.problem("unexpected_object", key)

    # records are read in batches and only their links are kept, so memory stays small for large logs
    for batch in _batches(record_keys):
        blobs = await _fetch(store, batch, concurrency)
        for key in batch:
            sid, seq = layout.parse_record_key(key)  # type: ignore[misc]
            rec = c.check_record(key, sid, seq, blobs[key])
            if rec is not None:
                c.streams.setdefault(sid, {})[seq] = rec
    for batch in _batches(digest_keys):
        blobs = await _fetch(store, batch, concurrency)
        for key in batch:
            sid, dseq = layout.parse_digest_key(key)  # type: ignore[misc]
            c.check_digest_object(key, sid, dseq, blobs[key])
    expected = c.expected_index()
    for batch in _batches(index_keys):
        blobs = await _fetch(store, batch, concurrency)
        for key in batch:
            c.check_pointer(key, blobs[key], expected)
    c.check_index_complete(set(index_keys), expected)
    catalog_keys = await list_all(store, layout.CATALOG)
    for batch in _batches(catalog_keys):
        blobs = await _fetch(store, batch, concurrency)
        for key in batch:
            c.check_catalog(key, blobs[key])
    c.check_catalog_complete(set(catalog_keys))

    c.check_streams()
    c.check_sessions()
    c.check_digest_chains()
    for anchor in anchors:
        c.check_anchor(_as_digest(anchor))
    c.check_unanchored()

    result = VerifyResult(problems=c.problems)
    result.checked = len(record_keys) + len(c.missing)
    result.valid = len(record_keys) - len(c.bad_records)
    result.digests_checked = len(digest_keys)
    result.digests_valid = result.digests_checked - len(c.bad_digests)
    return result

