"""Micro-benchmark (not a test) of the masking engine.

Run: ``python -m bench.masking_bench [--engine auto|hyperscan|python|pure] [--seconds S]``. For each engine it
prints, over a synthetic stream of reasoning prose (with numbers, code, and a few planted PII/secrets) cut into
1–40 character chunks the way model tokens arrive:

- µs of CPU per ``StreamMasker.feed`` call, p50 / p99 (``time.thread_time_ns`` around each call);
- characters held back after each call, p50 / p99;
- one-shot ``mask_text`` throughput in MB/s over ~2 MB of mixed prose / code / JSON / logs;
- the cost of a held-open PEM block streamed in 4-character chunks (the worst common case).
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

from gateway.detect import BUILTIN
from gateway.masking import Masker, Scanner, make_style
from gateway.masking.triggers import hyperscan_available

PROSE = (
    "Let me think about this step by step. The user wants to know whether the migration will finish before the "
    "deadline, so I should estimate the throughput first. If each batch takes about 3 seconds and there are 1200 "
    "batches, that is roughly an hour. However, the earlier run in 2023 showed that retries add maybe 15 percent. "
    "I also need to consider that the database is shared with the reporting job, which runs at 02:00 UTC. "
    "Actually, wait: the config says max_workers = 8, not 4, so the estimate halves. Let me double-check the "
    "arithmetic: 1200 / 8 = 150 rounds, times 3.5 s is 525 s, about nine minutes. That seems plausible. "
    "The answer should mention the assumption about retries and suggest monitoring the queue depth. "
)
CODE = (
    "def handler(event, context):\n    items = event.get('items', [])\n    total = sum(i['price'] * i['qty'] for "
    "i in items)\n    if total > 1000:\n        logger.info('large order %s', event['id'])\n    return {'statusCode': "
    "200, 'body': json.dumps({'total': round(total, 2)})}\n\nclass Cache:\n    def __init__(self, ttl=300):\n"
    "        self._data: dict[str, tuple[float, object]] = {}\n        self.ttl = ttl\n"
)
JSON_LOG = (
    '{"ts":"2024-05-01T12:03:44Z","level":"info","msg":"request done","path":"/v1/chat/completions",'
    '"status":200,"dur_ms":412,"model":"gpt-4o","tokens":{"in":1534,"out":286},"version":"1.4.2"}\n'
    "2024-05-01 12:03:45,118 WARNING worker-3 retry 2/5 for job 7f3a9c1e after 250 ms (upstream 502)\n"
)
PLANTED = [
    "john.doe@example.com", "+1 (415) 555-0134", "4111 1111 1111 1111", "AKIAZ3MQXK7PLW2NRT5B",
    "GB82 WEST 1234 5698 7654 32", "password=Xk9#mQ2$vLp8", "192.168.10.24", "123-45-6789",
    "https://admin:Tr0ub4dor-3x@db.internal.example.com/app",
]


def reasoning_stream(n_chars: int, rng: random.Random) -> str:
    parts, size = [], 0
    while size < n_chars:
        piece = PROSE if rng.random() < 0.8 else CODE
        if rng.random() < 0.15:
            piece = piece[: rng.randrange(len(piece))] + " " + rng.choice(PLANTED) + " " + piece
        parts.append(piece)
        size += len(piece)
    return "".join(parts)[:n_chars]


def mixed_corpus(n_chars: int, rng: random.Random) -> str:
    parts, size = [], 0
    while size < n_chars:
        piece = rng.choice((PROSE, CODE, JSON_LOG))
        if rng.random() < 0.05:
            piece += " " + rng.choice(PLANTED) + "\n"
        parts.append(piece)
        size += len(piece)
    return "".join(parts)[:n_chars]


def token_chunks(text: str, rng: random.Random) -> list[str]:
    """Model-like chunking: mostly one word with its leading space, sometimes a run of several, 1-40 chars."""
    out, i = [], 0
    while i < len(text):
        r = rng.random()
        if r < 0.1:
            size = rng.randint(1, 3)
        elif r < 0.85:
            j = text.find(" ", i + 1)
            size = (j - i) if j > 0 else len(text) - i
            size = max(1, min(size, 12))
        else:
            size = rng.randint(13, 40)
        out.append(text[i:i + size])
        i += size
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_stream(masker: Masker, chunks: list[str]) -> tuple[list[float], list[int]]:
    costs: list[float] = []
    held: list[int] = []
    sm = masker.stream()
    clock = time.thread_time_ns
    for c in chunks:
        t0 = clock()
        sm.feed(c)
        costs.append((clock() - t0) / 1000)
        held.append(sm.held)
    sm.flush()
    return costs, held


def bench_oneshot(masker: Masker, text: str, seconds: float) -> float:
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.thread_time()
        masker.mask_text(text)
        best = min(best, time.thread_time() - t0)
        if time.perf_counter() > deadline:
            break
    return len(text.encode()) / best / 1e6


def bench_pem(masker: Masker) -> float:
    body = "\n".join("MIIEowIBAAKCAQEA7x3Gk2b9YkqR0mQ+Zp/4u1" * 2 for _ in range(40))
    text = f"Here it is:\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\nDone."
    sm = masker.stream()
    t0 = time.thread_time()
    for i in range(0, len(text), 4):
        sm.feed(text[i:i + 4])
    sm.flush()
    return (time.thread_time() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", action="append", help="engine(s) to measure (default: all available)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time budget of the one-shot measurement")
    ap.add_argument("--chars", type=int, default=200_000, help="length of the streamed text")
    args = ap.parse_args()
    engines = args.engine or (["hyperscan"] if hyperscan_available() else []) + ["python", "pure"]
    rng = random.Random(7)
    stream_text = reasoning_stream(args.chars, rng)
    chunks = token_chunks(stream_text, rng)
    corpus = mixed_corpus(2_000_000, rng)
    print(f"stream: {len(stream_text)} chars in {len(chunks)} chunks "
          f"(mean {statistics.mean(map(len, chunks)):.1f} chars); one-shot corpus {len(corpus) / 1e6:.1f} MB")
    print(f"{'engine':>10} | {'µs/chunk p50':>12} {'p99':>7} {'mean':>7} | {'held p50':>8} {'p99':>5} | "
          f"{'one-shot MB/s':>13} | {'PEM 4-char ms':>13}")
    for engine in engines:
        masker = Masker(Scanner(BUILTIN, engine=engine), make_style("label"))
        bench_stream(masker, chunks[:2000])  # warm-up
        costs, held = bench_stream(masker, chunks)
        mbps = bench_oneshot(masker, corpus, args.seconds) if engine != "pure" or args.seconds > 0 else 0.0
        pem_ms = bench_pem(masker)
        print(f"{engine:>10} | {pct(costs, .5):12.1f} {pct(costs, .99):7.1f} {statistics.mean(costs):7.1f} | "
              f"{pct(held, .5):8d} {pct(held, .99):5d} | {mbps:13.1f} | {pem_ms:13.1f}")


if __name__ == "__main__":
    main()
