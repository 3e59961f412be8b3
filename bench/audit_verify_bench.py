"""Micro-benchmark (not a test) of the audit log verifier.

Run: ``python -m bench.audit_verify_bench [--records N] [--events E] [--sessions S] [--streams W]
[--segment R] [--store DIR]``. Writes N records (each with E masked response events, ~80 bytes each) over W writer
streams and S sessions, in segments of R records (250: what the uploader ships under load) with their index and
catalog objects, and a signed digest every 1,000 records per stream, into a MemoryStore (or a FileStore under DIR),
then times `verify_store` over the whole log and prints records/s. Target: ≥ 20,000 records/s.
"""
from __future__ import annotations

import argparse
import asyncio
import time

from gateway.audit.chain import MemorySessionHeads, StreamChain, write_records
from gateway.audit.digest import DigestWriter, generate_key
from gateway.audit.layout import segment_prefix
from gateway.audit.record import (
    Decision,
    MaskedEvent,
    PrincipalInfo,
    Record,
    RecordBody,
)
from gateway.audit.segment import unpack
from gateway.audit.store import FileStore, MemoryStore, ObjectStore
from gateway.audit.verify import verify_store


def make_body(i: int, session: str, events: int) -> RecordBody:
    return RecordBody(
        record_id=f"r{i:08d}", request_id=f"q{i:08d}", session_id=session, time="2025-01-01T00:00:00.000Z",
        principal=PrincipalInfo(sub="alice", groups=["eng"], client_id="cli", token_id_hash="ab" * 16),
        route="/v1/chat/completions", method="POST", dialect="openai",
        decision=Decision(action="allow", rule="default"),
        masked_request='{"model":"m","stream":true,"messages":[{"role":"user","content":"[MASKED:email] hello"}]}',
        response_status=200, response_content_type="text/event-stream",
        masked_response=[MaskedEvent(t_ms=k * 12, data=f'data: {{"choices":[{{"delta":{{"content":"tok {k}'
                                     f' of {i}"}}}}]}}\n\n') for k in range(events)],
        masking_counts={"pii.email": 1}, timings_us={"upstream_headers": 1200, "total": 50000},
    )


async def build(store: ObjectStore, n: int, events: int, sessions: int, streams: int, segment: int):
    key = generate_key()
    heads = MemorySessionHeads()
    chains = [StreamChain(heads) for _ in range(streams)]
    writers = [DigestWriter(c, key) for c in chains]
    pending: list[list[Record]] = [[] for _ in range(streams)]
    for i in range(n):
        w = i % streams
        pending[w].append(await chains[w].append(make_body(i, f"session-{i % sessions}", events)))
        digest_due = chains[w].last_seq % 1000 == 0
        if len(pending[w]) >= segment or digest_due:
            await write_records(store, pending[w])
            pending[w] = []
        if digest_due:
            await writers[w].publish(store)
    for w, writer in enumerate(writers):
        if pending[w]:
            await write_records(store, pending[w])
        await writer.publish(store)
    return key, [w.latest for w in writers]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--segment", type=int, default=250, help="records per segment")
    ap.add_argument("--store", help="directory for a FileStore (default: MemoryStore)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    store: ObjectStore = FileStore(args.store, fsync=False) if args.store else MemoryStore()
    t0 = time.perf_counter()
    key, anchors = await build(store, args.records, args.events, args.sessions, args.streams, args.segment)
    built = time.perf_counter() - t0
    sample = await store.list(segment_prefix(anchors[0]["stream_id"]), limit=1)
    lines = unpack(await store.get(sample[0]) or b"\n") if sample else []
    size = sum(map(len, lines)) // max(len(lines), 1)
    print(f"built {args.records} records ({args.events} events, ~{size} B each) over {args.streams} streams, "
          f"{args.sessions} sessions, {args.segment} per segment in {built:.1f} s "
          f"({args.records / built:,.0f} records/s sealed+stored)")
    best = None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        result = await verify_store(store, public_keys=[key.public_key()], anchors=anchors)
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
        assert result.clean, result.lines()[:5]
        print(f"verify: {result.summary()}, {result.digests_checked} digests, {took:.2f} s "
              f"= {args.records / took:,.0f} records/s")
    print(f"best: {args.records / best:,.0f} records/s (target ≥ 20,000)")


if __name__ == "__main__":
    asyncio.run(main())
