"""The offline verifier: everything an investigator needs to trust (or distrust) a stored log.

`verify_store(store, public_keys=..., anchors=...)` reads the whole log through the `ObjectStore` interface and
checks: every segment's framing and every record's canonical bytes, hash and place (line i of segment
`first`..`last` is record `first + i`); each stream chain (no missing seq, `prev` links, no fork, no seq stored
twice); each session chain across streams (`session_seq` without gaps, `session_prev` links, no fork); the
`sessions/` pointers and `catalog/` objects, byte for byte against what the segments imply
(`segment.index_objects`); each stream's digest chain (Ed25519 signature under a given public key,
`prev_digest_signature` links) and what the digests claim (the record at `last_seq` has `last_hash`; each touched
session's record exists with that hash); records after the last digest (`unanchored`, a warning); and, for each
externally held latest digest (`anchors`), that the store still holds that digest and everything it covers (tail
truncation).

Output: a `VerifyResult`; `result.lines()` is one ``INVALID: <what> <where>[ (detail)]`` line per problem, then
the summary ``<valid>/<checked> valid``: records valid (no error names them) out of record lines stored plus
records known to be missing (so a deletion shows as ``39/40 valid``).

Where: an object key; for a record, ``<segment key>#<stream_seq>``: the segment's line that should hold that
`stream_seq` (line ``stream_seq - first``, counting from 0), whatever the line itself claims;
``stream <id> seq <n>[..<m>]`` / ``session <id> seq <n>`` for records that are absent.

Problem kinds (`Problem.what`):
  segments  segment_vanished (listed but unreadable), segment_malformed (not newline-terminated lines, or a line
            count other than last − first + 1; the lines there are still checked)
  records   record_unreadable, record_not_canonical (a byte changed outside the content, e.g. whitespace),
            hash_mismatch, record_malformed (schema, floats, a field no index key can spell), record_misplaced
            (the line claims another stream/seq; the chain checks take it where it claims to be, so a moved line
            is reported once)
  streams   missing_record (deleted), broken_prev, fork (two records claim one prev), duplicate_record (a seq
            stored twice, e.g. by overlapping segments, even as identical copies)
  sessions  session_gap, session_fork (two records claim one session_seq), broken_session_prev
  index     index_missing / index_orphan / index_mismatch (`sessions/` pointers), catalog_missing /
            catalog_orphan / catalog_mismatch (`catalog/` objects); objects naming a segment whose records could
            not all be read in place are not compared (that segment's problems are reported instead);
            segment_unusable (per-session verify only: another session's record in a segment the session uses
            is misplaced or cannot be indexed, so the session's index for it cannot be checked)
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


BATCH_RECORDS = 20_000
"""Segments are read in batches of about this many records (two batches in memory: one checked, one arriving)."""


def _segment_batches(segments: list[tuple[str, str, int, int]]) -> list[list[tuple[str, str, int, int]]]:
    """Group segments so a batch holds about `BATCH_RECORDS` records (memory stays bounded however large the
    segments are) and at most 2000 objects."""
    batches: list[list[tuple[str, str, int, int]]] = [[]]
    size = 0
    for seg in segments:
        if batches[-1] and (size >= BATCH_RECORDS or len(batches[-1]) >= 2000):
            batches.append([])
            size = 0
        batches[-1].append(seg)
        size += seg[3] - seg[2] + 1
    return batches if batches[0] else []


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
    segments: list[tuple[str, str, int, int]] = []  # (key, stream_id, first, last)
    digest_keys: list[str] = []
    for key in await list_all(store, layout.STREAMS):
        if (seg := layout.parse_segment_key(key)) is not None:
            segments.append((key, *seg))
        elif layout.parse_digest_key(key):
            digest_keys.append(key)
        else:
            c.problem("unexpected_object", key)

    # segments are read in batches, the next one fetched while this one is checked; only each record's links
    # and its segment's index objects are kept, so memory stays small for large logs
    batches = _segment_batches(segments)
    pending: asyncio.Future[dict[str, bytes | None]] | None = None
    try:
        for i, batch in enumerate(batches):
            blobs = await (pending or _fetch(store, [s[0] for s in batch], concurrency))
            pending = (asyncio.ensure_future(_fetch(store, [s[0] for s in batches[i + 1]], concurrency))
                       if i + 1 < len(batches) else None)
            for key, sid, first, last in batch:
                c.check_segment(key, sid, first, last, blobs.pop(key))
    finally:
        if pending is not None:
            pending.cancel()
    for batch in _batches(digest_keys):
        blobs = await _fetch(store, batch, concurrency)
        for key in batch:
            sid, dseq = layout.parse_digest_key(key)  # type: ignore[misc]
            c.check_digest_object(key, sid, dseq, blobs[key])
    for prefix, check, complete in ((layout.SESSIONS, c.check_index_object, c.check_index_complete),
                                    (layout.CATALOG, c.check_catalog_object, c.check_catalog_complete)):
        listed = await list_all(store, prefix)
        for batch in _batches(listed):
            blobs = await _fetch(store, batch, concurrency)
            for key in batch:
                check(key, blobs[key])
        complete(set(listed))

    c.check_streams()
    c.check_sessions()
    c.check_digest_chains()
    for anchor in anchors:
        c.check_anchor(_as_digest(anchor))
    c.check_unanchored()

    result = VerifyResult(problems=c.problems)
    result.checked = c.lines + c.missing
    result.valid = c.lines - len(c.bad_records)
    result.digests_checked = len(digest_keys)
    result.digests_valid = result.digests_checked - len(c.bad_digests)
    return result
