"""Micro-benchmark (not a test): decode + encode a 200-event chat stream with no edits.

Run: ``python -m bench.codec_bench``. Prints µs per event for three chunkings: one event per chunk
(what upstreams usually send), 1 KiB network reads, and the whole body at once.
"""
from __future__ import annotations

import json
import time

from gateway.dialects import codec_for

EVENTS = 200


def chat_stream(n: int = EVENTS) -> bytes:
    head = {"id": "chatcmpl-9f1c", "object": "chat.completion.chunk", "created": 1718000000,
            "model": "deepseek-reasoner", "system_fingerprint": "fp_7e0991cad4"}
    out = []
    for i in range(n - 1):
        field = "reasoning_content" if i < n // 2 else "content"
        delta = {"content": None, field: f"token {i} caf\u00e9 "}
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
        out.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def run(chunks: list[bytes], rounds: int) -> float:
    """Best µs per event over ``rounds`` runs."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        codec = codec_for("/v1/chat/completions", "text/event-stream")
        out = []
        for i, chunk in enumerate(chunks):
            out.append(codec.encode(codec.decode(chunk, i == len(chunks) - 1)))
        best = min(best, time.perf_counter() - start)
    assert b"".join(out) == b"".join(chunks)
    return best / EVENTS * 1e6


def main() -> None:
    stream = chat_stream()
    per_event = [part + b"\n\n" for part in stream.split(b"\n\n")[:-1]]
    reads = [stream[i:i + 1024] for i in range(0, len(stream), 1024)]
    print(f"{len(stream)} bytes, {EVENTS} events")
    for label, chunks in (("one event per chunk", per_event), ("1 KiB reads", reads), ("whole body", [stream])):
        print(f"{label:>20}: {run(chunks, 200):.2f} µs/event")


if __name__ == "__main__":
    main()
