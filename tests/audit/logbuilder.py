"""Build a realistic audit log (several sessions over two writer streams, periodic digests) and tamper with it."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.chain import (
    MemorySessionHeads,
    SessionHeads,
    StreamChain,
    write_record,
)
from gateway.audit.digest import DigestWriter, generate_key
from gateway.audit.record import (
    Approval,
    Decision,
    MaskedEvent,
    PrincipalInfo,
    Record,
    RecordBody,
    hash_of,
)
from gateway.audit.store import FileStore, MemoryStore, ObjectStore

STREAM_A, STREAM_B = "20250101T000000Z-aaaaaaaaaaaa", "20250101T000001Z-bbbbbbbbbbbb"
SESSIONS = ("s-alpha", "bob@corp:7", "s-gamma", "s-delta")


def body(i: int, session_id: str, *, events: int = 3) -> RecordBody:
    return RecordBody(
        record_id=f"rec-{i:05d}", request_id=f"req-{i:05d}", session_id=session_id,
        time=f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        principal=PrincipalInfo(sub="alice", groups=["eng", "ml"], client_id="cli", token_id_hash="ab" * 16),
        route="/v1/chat/completions", method="POST", dialect="openai",
        decision=Decision(action="allow", rule="default-allow" if i % 3 else None),
        approval=Approval(approval_id=f"ap-{i}", state="approved", deciders=["carol"]) if i % 5 == 0 else None,
        masked_request='{"messages":[{"role":"user","content":"key [MASKED:aws_key] é ✓ \\n"}]}',
        response_status=200, response_content_type="text/event-stream",
        masked_response=[MaskedEvent(t_ms=7 * k, data=f'data: {{"n":{k},"i":{i}}}\n\n') for k in range(events)],
        masking_counts={"aws_access_key": 1, "email": i % 2},
        timings_us={"upstream_headers": 1500 + i, "total": 90000 + i},
    )


@dataclass
class Log:
    store: ObjectStore
    key: Ed25519PrivateKey
    chains: list[StreamChain]
    writers: list[DigestWriter]
    records: list[Record] = field(default_factory=list)

    @property
    def anchors(self) -> list[dict[str, Any]]:
        """The latest digest of each stream, as held outside the store."""
        return [w.latest for w in self.writers if w.latest]

    @property
    def public_keys(self) -> list:
        return [self.key.public_key()]

    def of(self, stream: str) -> list[Record]:
        return [r for r in self.records if r.stream_id == stream]

    async def append(self, stream: int, session_id: str) -> Record:
        rec = await self.chains[stream].append(body(len(self.records), session_id))
        await write_record(self.store, rec)
        self.records.append(rec)
        return rec


async def build_log(store: ObjectStore, *, n: int = 40, digest_every: int = 6,
                    heads: list[SessionHeads] | None = None, key: Ed25519PrivateKey | None = None) -> Log:
    """`n` records over two streams and four sessions; each stream publishes a digest every `digest_every` of its
    records and once at the end. The last record of stream A is in session `s-gamma`."""
    key = key or generate_key()
    shared = MemorySessionHeads()
    h = heads or [shared, shared]
    chains = [StreamChain(h[0], STREAM_A), StreamChain(h[1], STREAM_B)]
    log = Log(store, key, chains, [DigestWriter(c, key) for c in chains])
    for i in range(n):
        stream = (i * 7 // 3) % 2
        session = SESSIONS[(i * 5 // 2) % len(SESSIONS)] if i < n - 1 else "s-gamma"
        if i == n - 1:
            stream = 0
        await log.append(stream, session)
        if log.chains[stream].last_seq % digest_every == 0:
            await log.writers[stream].publish(store)
    for w in log.writers:
        await w.publish(store)
    return log


# -- tampering: bypass the append-only interface ------------------------------------------------------------------
def raw_set(store: ObjectStore, key: str, data: bytes) -> None:
    if isinstance(store, MemoryStore):
        store.tamper_set(key, data)
    else:
        assert isinstance(store, FileStore)
        path = store._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def raw_delete(store: ObjectStore, key: str) -> None:
    if isinstance(store, MemoryStore):
        store.tamper_delete(key)
    else:
        os.unlink(store._path(key))  # type: ignore[attr-defined]


async def raw_get(store: ObjectStore, key: str) -> bytes:
    data = await store.get(key)
    assert data is not None, key
    return data


async def rewrite(store: ObjectStore, key: str, change: Callable[[dict], None], *, rehash: bool = False) -> dict:
    """Edit the JSON object at `key`; with `rehash`, recompute its hash as a forger without the key would."""
    obj = decode(await raw_get(store, key))
    change(obj)
    if rehash:
        obj["hash"] = hash_of(obj)
    raw_set(store, key, canonical_bytes(obj))
    return obj
