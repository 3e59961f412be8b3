"""A bounded asyncio/aiohttp load generator, run in its own process so its CPU is not the target's.

Modes (``LoadConfig``):
- closed loop: ``concurrency`` workers send back to back, for ``requests`` in total and/or ``duration`` seconds;
- fixed rate: ``rate`` requests/s started on a schedule (open loop, ``concurrency`` caps what is outstanding);
- hold (``hold_streams``): open N streams, report when each delivered its first bytes, keep them open until
  released — for memory per idle stream.

Latency runs from just before the request is sent to the end of its body; time-to-first-chunk (TTFC) to the
first body bytes. Streaming responses are counted in SSE events (frames ending in a blank line).

    python -m bench.loadgen URL [--stream] [--concurrency 32] [--duration 5] [--rate 50] ...   # one JSON line
    python -m bench.loadgen --serve      # JSON commands on stdin, one JSON answer line each (used by run.py)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import aiohttp

CHAT_BODY = json.dumps({"model": "fake-reasoner-1", "messages": [
    {"role": "user", "content": "Summarise last quarter's support tickets in three bullet points."}]})


@dataclass
class LoadConfig:
    url: str
    method: str = "POST"
    body: str = CHAT_BODY
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    stream: bool = False
    """Read the body as it arrives: TTFC and SSE event counts."""
    concurrency: int = 16
    requests: int | None = None
    """Total requests to send (warm-up included); None: bounded by ``duration`` only."""
    duration: float | None = None
    """Seconds of measurement after the warm-up; None: bounded by ``requests`` only."""
    rate: float | None = None
    """Fixed-rate mode: requests started per second."""
    warmup: float = 0.0
    """Seconds at the start whose requests are sent but left out of the statistics."""
    timeout: float = 60.0
    hold_streams: int = 0
    """Hold mode: open this many streams and keep them open until released."""
    targets: list[dict] | None = None
    """Fixed-rate mode only: `[{"url", "headers"}, ...]` served in turn (A B C A B C ...), each at ``rate``, and
    summarised apart. Interleaving request by request puts every target under the same drift and noise, which
    is what makes sub-millisecond differences between them measurable."""


@dataclass(slots=True)
class Sample:
    target: int
    """Index into ``LoadConfig.targets`` (0 without targets)."""
    start: float
    latency: float
    ttfc: float | None
    events: int
    nbytes: int
    status: int
    """HTTP status, 0 when the request failed without one."""


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


async def one_request(session: aiohttp.ClientSession, cfg: LoadConfig, target: int = 0) -> Sample:
    url, headers = (cfg.url, cfg.headers) if cfg.targets is None else (
        cfg.targets[target]["url"], {**cfg.headers, **cfg.targets[target].get("headers", {})})
    t0 = time.perf_counter()
    ttfc, events, nbytes, tail = None, 0, 0, b""
    try:
        async with session.request(cfg.method, url, data=cfg.body or None, headers=headers) as r:
            if cfg.stream:
                async for data in r.content.iter_any():
                    if ttfc is None:
                        ttfc = time.perf_counter() - t0
                    nbytes += len(data)
                    # An SSE frame ends with "\n\n"; the pair may straddle two reads.
                    events += data.count(b"\n\n") + (tail == b"\n" and data[:1] == b"\n")
                    tail = data[-1:]
            else:
                nbytes = len(await r.read())
            status = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        status = 0
    return Sample(target, t0, time.perf_counter() - t0, ttfc, events, nbytes, status)


async def _closed_loop(session: aiohttp.ClientSession, cfg: LoadConfig, samples: list[Sample]) -> None:
    deadline = time.perf_counter() + cfg.warmup + cfg.duration if cfg.duration is not None else math.inf
    left = [cfg.requests if cfg.requests is not None else math.inf]

    async def worker() -> None:
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            samples.append(await one_request(session, cfg))

    await asyncio.gather(*(worker() for _ in range(cfg.concurrency)))


async def _fixed_rate(session: aiohttp.ClientSession, cfg: LoadConfig, samples: list[Sample]) -> None:
    assert cfg.rate
    k = len(cfg.targets) if cfg.targets else 1
    rate = cfg.rate * k
    total = cfg.requests if cfg.requests is not None else int(rate * (cfg.warmup + (cfg.duration or 1.0)))
    limit = asyncio.Semaphore(cfg.concurrency * k)
    t0 = time.perf_counter()

    async def send(target: int) -> None:
        async with limit:
            samples.append(await one_request(session, cfg, target))

    tasks = []
    for i in range(total):
        if (delay := t0 + i / rate - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i % k)))
    await asyncio.gather(*tasks)


def summarize(samples: list[Sample], measure_from: float, cpu_s: float) -> dict:
    measured = [s for s in samples if s.start >= measure_from]
    ok = [s for s in measured if 200 <= s.status < 300]
    elapsed = max((s.start + s.latency for s in measured), default=measure_from) - measure_from
    lat = sorted(s.latency * 1000 for s in ok)
    ttfc = sorted(s.ttfc * 1000 for s in ok if s.ttfc is not None)
    events = sum(s.events for s in ok)
    statuses: dict[str, int] = {}
    for s in measured:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    per_s = (lambda n: n / elapsed if elapsed > 0 else 0.0)
    return {
        "requests": len(measured), "ok": len(ok), "errors": len(measured) - len(ok), "statuses": statuses,
        "elapsed_s": elapsed, "rps": per_s(len(ok)),
        "latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
        "ttfc_p50_ms": percentile(ttfc, 50), "ttfc_p99_ms": percentile(ttfc, 99),
        "events": events, "events_per_s": per_s(events), "bytes": sum(s.nbytes for s in ok),
        # Everything sent, warm-up included: what the target's CPU time is divided by.
        "total_requests": len(samples), "total_events": sum(s.events for s in samples),
        "loadgen_cpu_s": cpu_s,
    }


def _session(limit: int, timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False),
                                 timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False)


async def run_load(cfg: LoadConfig) -> dict:
    """Run one bounded load and return its summary (see ``summarize``)."""
    if cfg.requests is None and cfg.duration is None:
        raise ValueError("a load needs `requests` and/or `duration`")
    samples: list[Sample] = []
    cpu0 = time.process_time()
    if cfg.targets and not cfg.rate:
        raise ValueError("`targets` needs the fixed-rate mode")
    async with _session(0 if cfg.targets else cfg.concurrency, cfg.timeout) as session:
        t0 = time.perf_counter()
        await (_fixed_rate if cfg.rate else _closed_loop)(session, cfg, samples)
    cpu = time.process_time() - cpu0
    if cfg.targets:
        return {"targets": [summarize([s for s in samples if s.target == i], t0 + cfg.warmup, cpu)
                            for i in range(len(cfg.targets))]}
    return summarize(samples, t0 + cfg.warmup, cpu)


async def hold_streams(cfg: LoadConfig, release: asyncio.Event, report) -> dict:
    """Open ``cfg.hold_streams`` streams; ``report(held, failed)`` once each delivered bytes or failed; keep
    them open until ``release`` is set."""
    held = failed = 0
    settled = asyncio.Event()

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal held, failed
        try:
            async with session.request(cfg.method, cfg.url, data=cfg.body, headers=cfg.headers) as r:
                await r.content.readany()
                held += r.status == 200
                failed += r.status != 200
                if held + failed == cfg.hold_streams:
                    settled.set()
                await release.wait()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            failed += 1
            if held + failed == cfg.hold_streams:
                settled.set()

    async with _session(0, cfg.timeout) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(cfg.hold_streams)]
        try:
            await asyncio.wait_for(settled.wait(), cfg.timeout)
        except asyncio.TimeoutError:
            pass
        await report(held, failed)
        await release.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"held": held, "failed": failed}


async def serve(reader=None, write=None) -> None:
    """Command loop for run.py: `{"load": {...}}` -> one summary line; `{"hold": {...}}` -> a `{"held": n,
    "failed": n}` line, then waits for `{"release": true}` and answers `{"released": true}`. EOF ends it."""
    readline = reader or (lambda: asyncio.to_thread(sys.stdin.readline))
    write = write or (lambda obj: print(json.dumps(obj), flush=True))
    while line := await readline():
        command = json.loads(line)
        if "load" in command:
            write(await run_load(LoadConfig(**command["load"])))
        elif "hold" in command:
            release = asyncio.Event()

            async def report(held: int, failed: int) -> None:
                write({"held": held, "failed": failed})
                json.loads(await readline() or '{"release": true}')  # any line (or EOF) releases
                release.set()

            await hold_streams(LoadConfig(**command["hold"]), release, report)
            write({"released": True})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    p.add_argument("url", nargs="?", help="full URL, e.g. http://127.0.0.1:8080/v1/chat/completions")
    p.add_argument("--serve", action="store_true", help="read JSON commands on stdin (for bench.run)")
    p.add_argument("--method", default="POST")
    p.add_argument("--body", default=None, help="request body (default: a small chat request)")
    p.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    p.add_argument("--stream", action="store_true", help='add "stream": true to the default body; count events')
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--requests", type=int)
    p.add_argument("--duration", type=float)
    p.add_argument("--rate", type=float, help="fixed-rate mode, requests/s")
    p.add_argument("--warmup", type=float, default=0.0)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(serve())
        return
    if not args.url or (args.requests is None and args.duration is None):
        p.error("give a URL and --requests and/or --duration")
    body = args.body if args.body is not None else (
        json.dumps({**json.loads(CHAT_BODY), "stream": True}) if args.stream else CHAT_BODY)
    headers = {"Content-Type": "application/json"}
    for spec in args.header:
        name, _, value = spec.partition(":")
        headers[name.strip()] = value.strip()
    cfg = LoadConfig(url=args.url, method=args.method, body=body, headers=headers, stream=args.stream,
                     concurrency=args.concurrency, requests=args.requests, duration=args.duration,
                     rate=args.rate, warmup=args.warmup)
    print(json.dumps(asdict(cfg) | {"result": asyncio.run(run_load(cfg))}))


if __name__ == "__main__":
    main()
