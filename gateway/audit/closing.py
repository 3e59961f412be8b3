"""Closing the stream of a process that died: sign a last digest over the tail it never anchored.

A gateway killed with -9 leaves its writer stream without a final digest: the records after its last periodic
digest (up to `digest_interval_s` worth, plus whatever its spool still held and the next start shipped) verify as
`unanchored`. The next process on the same spool directory holds the same signing key, so once the spool has
drained it can append the digest the dead one would have written: the next `digest_seq`, chained to the last
signature, naming the stream's last stored record and the sessions touched since. It only ever extends a digest
chain signed with its own key, and only over records already in the store (which it re-reads and checks), so it
cannot vouch for anything it did not see.

`StreamRegistry` remembers, in the spool directory, which streams were started there and not closed cleanly.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import layout
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.digest import key_id, sign_digest
from gateway.audit.record import Record, hash_of, utc_now
from gateway.audit.segment import unpack
from gateway.audit.store import ObjectStore, list_all


class StreamRegistry:
    """`<spool_dir>/streams`: one stream id per line, for streams started here and not yet closed."""

    def __init__(self, spool_dir: str) -> None:
        self.path = os.path.join(spool_dir, "streams")

    def open_streams(self) -> list[str]:
        try:
            with open(self.path) as f:
                return [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def add(self, stream_id: str) -> None:
        self._write([*self.open_streams(), stream_id])

    def remove(self, stream_id: str) -> None:
        self._write([s for s in self.open_streams() if s != stream_id])

    def _write(self, ids: list[str]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(f"{i}\n" for i in dict.fromkeys(ids)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


async def close_stream(store: ObjectStore, stream_id: str, key: Ed25519PrivateKey) -> dict[str, Any] | None:
    """Sign the closing digest of `stream_id` if records follow its last digest. Returns the digest written, or
    None (nothing to anchor, or the stream's digests are not ours). Raises on store errors and on a stream whose
    stored tail does not chain (that is for the verifier to report, not for us to sign)."""
    digest_keys = await list_all(store, layout.digest_prefix(stream_id))
    last: dict[str, Any] | None = None
    if digest_keys:
        raw = await store.get(digest_keys[-1])
        last = decode(raw) if raw is not None else None
        if last is None or last.get("public_key_id") != key_id(key.public_key()):
            return None
    anchored = int(last["last_seq"]) if last else 0
    touched: dict[str, list[Any]] = {}
    prev = last["last_hash"] if last else None
    seq = anchored
    async for where, raw in _records_after(store, stream_id, anchored):
        try:
            record = Record.from_bytes(raw)
            intact = hash_of(decode(raw)) == record.hash
        except ValueError:
            record, intact = None, False
        if record is None or not intact or record.stream_seq != seq + 1 or record.prev != prev:
            raise ValueError(f"stream {stream_id} does not chain at {where}; not signing over it")
        touched[record.session_id] = [record.session_seq, record.hash]
        prev, seq = record.hash, record.stream_seq
    if seq == anchored:
        return None
    digest = sign_digest({
        "v": 1, "stream_id": stream_id, "digest_seq": (int(last["digest_seq"]) if last else 0) + 1,
        "last_seq": seq, "last_hash": prev, "sessions_touched": touched,
        "prev_digest_signature": last["signature"] if last else None, "created_at": utc_now(),
    }, key)
    await store.put_if_absent(layout.digest_key(stream_id, digest["digest_seq"]), canonical_bytes(digest))
    return digest


async def _records_after(store: ObjectStore, stream_id: str, after: int) -> AsyncIterator[tuple[str, bytes]]:
    """`(<segment key>#<position>, bytes)` of the stream's stored records after `after`, in segment order: the
    listing starts at the segment that may hold `after + 1`. A segment that is gone or not newline-terminated
    lines raises ValueError (the caller must not sign over it)."""
    prefix = layout.segment_prefix(stream_id)
    start = layout.segment_search_start(stream_id, after + 1)
    while keys := await store.list(prefix, start_after=start):
        for key in keys:
            parsed = layout.parse_segment_key(key)
            if parsed is None or parsed[2] <= after:
                continue
            body = await store.get(key)
            try:
                lines = unpack(body) if body is not None else None
            except ValueError:
                lines = None
            if lines is None or len(lines) != parsed[2] - parsed[1] + 1:
                raise ValueError(f"stream {stream_id}: segment {key} is unreadable; not signing over it")
            for i, raw in enumerate(lines):
                if parsed[1] + i > after:
                    yield f"{key}#{parsed[1] + i}", raw
        start = keys[-1]
