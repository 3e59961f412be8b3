"""What the audit log costs, on a real S3 (SeaweedFS on loopback), in one run:

    python -m bench.audit_bench [--quick] [--duration S] [--rounds N] [--out results.json]

Targets (each a `gateway serve` process with the repo's policies; the same fake backend):
- `masked`  — policy + masking, no audit log (the F2 gateway);
- `relaxed` — plus the audit log with `durability: relaxed` (records spooled in the background);
- `strict`  — plus `durability: strict` (request fsynced before forwarding, record fsynced before the last byte).

Reported: the added p50 of `strict` over `relaxed` at a light fixed rate (target ≤ 2 ms; every target interleaved
request by request), and at the gateway's maximum request rate (closed loop, non-streaming and streaming): the
records/s the gateway produced, the uploader's backlog sampled through the run (no growing backlog = it keeps up),
the time to drain after the load stops, and S3 PUTs per record (objects shipped / records).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.loadgen import CHAT_BODY
from bench.procs import Loadgen, run_and_save, stop_all
from bench.run import (
    start_backend,
    CHAT,
    POLICIES,
    GatewayUnavailable,
    Plan,
    Target,
    measure,
    start_gateway,
    start_issuer,
)
from bench.procs import Child


def audit_config(name: str, durability: str | None, sw, tmp: Path, store: str = "s3") -> dict:
    config: dict = {"policies": {"path": str(POLICIES), "reload_s": 0}, "logging": {"access_log": False}}
    if durability and store == "file":
        config["audit"] = {"store": f"file://{tmp / ('store-' + name)}", "spool_dir": str(tmp / f"spool-{name}"),
                           "signing_key": str(tmp / f"key-{name}.pem"), "durability": durability}
    elif durability:
        config["audit"] = {
            "store": f"s3://{sw.bucket}/bench-{name}-{os.getpid()}-{int(time.time())}",
            "s3": {"endpoint_url": sw.endpoint, "region": sw.region, "access_key_id": sw.access_key,
                   "secret_access_key": sw.secret_key},
            "spool_dir": str(tmp / f"spool-{name}"), "signing_key": str(tmp / f"key-{name}.pem"),
            "durability": durability}
    return config


async def audit_status(session: aiohttp.ClientSession, target: Target) -> dict | None:
    async with session.get(target.url + "/readyz") as resp:
        body = await resp.json()
    return body.get("checks", {}).get("audit")  # {"ready", "backlog_entries", "shipped_entries", ...}


async def sample_backlog(session: aiohttp.ClientSession, target: Target, stop: asyncio.Event,
                         out: list[int]) -> None:
    while not stop.is_set():
        status = await audit_status(session, target)
        if status:
            out.append(status["backlog_entries"])
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except asyncio.TimeoutError:
            pass


async def max_rate(loadgen: Loadgen, session: aiohttp.ClientSession, target: Target, phase: str,
                   plan: Plan) -> dict:
    before = await audit_status(session, target)
    stop, backlog = asyncio.Event(), []
    sampler = asyncio.create_task(sample_backlog(session, target, stop, backlog))
    result = await measure(loadgen, target, phase, plan)
    stop.set()
    await sampler
    out = {"rps": result["rps"], "p50_ms": result["latency_p50_ms"], "ok": result["ok"],
           "errors": result["errors"], "total_requests": result["total_requests"]}
    if before is None:
        return out
    t0 = time.perf_counter()
    while (status := await audit_status(session, target)) and status["backlog_entries"] > 0:
        if time.perf_counter() - t0 > 60:
            break
        await asyncio.sleep(0.05)
    entries = status["shipped_entries"] - before["shipped_entries"]
    objects = status["shipped_objects"] - before["shipped_objects"]
    third = max(1, len(backlog) // 3)
    out.update({
        "records_per_s": result["total_requests"] / (result["elapsed_s"] + plan.warmup),
        "backlog_max": max(backlog, default=0),
        "backlog_first_third_mean": statistics.fmean(backlog[:third]) if backlog else 0,
        "backlog_last_third_mean": statistics.fmean(backlog[-third:]) if backlog else 0,
        "drain_s_after_load": time.perf_counter() - t0,
        "backlog_after_drain": status["backlog_entries"],
        "records_shipped": entries,
        "puts_per_record": objects / entries if entries else None,
    })
    return out


async def light(loadgen: Loadgen, targets: list[Target], plan: Plan) -> dict[str, dict]:
    result = await loadgen.load({
        "url": targets[0].url + CHAT, "targets": [{"url": t.url + CHAT, "headers": t.headers} for t in targets],
        "headers": {"Content-Type": "application/json"}, "body": CHAT_BODY, "rate": plan.light_rate,
        "concurrency": 4, "duration": plan.light_duration, "warmup": plan.warmup})
    return {t.name: {"p50_ms": r["latency_p50_ms"], "p99_ms": r["latency_p99_ms"], "errors": r["errors"]}
            for t, r in zip(targets, result["targets"])}


async def run(args: argparse.Namespace) -> dict:
    from tests.audit.seaweed import running_seaweed

    quick = args.quick
    plan = Plan(rounds=args.rounds or (2 if quick else 3), duration=args.duration or (2.0 if quick else 5.0),
                light_duration=args.duration or (3.0 if quick else 8.0), light_rate=args.light_rate,
                concurrency=args.concurrency, idle_streams=0, gateway_starts=1, warmup=0.5, stream_delay_ms=0)
    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    children: list[Child] = []
    loadgen = await Loadgen().start()
    issuer = None
    with running_seaweed() as sw:
        try:
            backend_url = await start_backend(tmp, children)
            issuer = await start_issuer()
            targets: list[Target] = []
            for name, durability in (("masked", None), ("relaxed", "relaxed"), ("strict", "strict")):
                child, target, _ = await start_gateway(name, backend_url, issuer, tmp, plan,
                                                       audit_config(name, durability, sw, tmp, args.store))
                children.append(child)
                targets.append(target)
            rounds: list[dict] = []
            async with aiohttp.ClientSession() as session:
                for t in targets:  # warm-up: lazy imports, first S3 connections
                    await loadgen.load({"url": t.url + CHAT, "body": CHAT_BODY, "headers": t.headers,
                                        "concurrency": 4, "requests": 50})
                for r in range(plan.rounds):
                    order = targets[r % len(targets):] + targets[:r % len(targets)]
                    rnd: dict = {"light": await light(loadgen, order, plan)}
                    for phase in ("nonstream", "stream"):
                        rnd[phase] = {t.name: await max_rate(loadgen, session, t, phase, plan) for t in order}
                    rounds.append(rnd)
                    print(f"audit-bench: round {r + 1}/{plan.rounds} done", file=sys.stderr)
        finally:
            await stop_all(loadgen, children, issuer)
    return summarize(rounds, plan)


def _median(rounds: list[dict], phase: str, target: str, key: str) -> float | None:
    values = [r[phase][target].get(key) for r in rounds if r[phase][target].get(key) is not None]
    return statistics.median(values) if values else None


def summarize(rounds: list[dict], plan: Plan) -> dict:
    s = {phase: {t: {k: _median(rounds, phase, t, k) for k in rounds[0][phase][t]} for t in rounds[0][phase]}
         for phase in rounds[0]}
    strict_added = (s["light"]["strict"]["p50_ms"] - s["light"]["relaxed"]["p50_ms"])
    lines = [f"audit bench: {plan.rounds} rounds, medians (loopback SeaweedFS S3, 2 shared cores)", ""]
    lines.append(f"light {plan.light_rate:.0f} req/s p50 ms: " + ", ".join(
        f"{t} {v['p50_ms']:.3f}" for t, v in s["light"].items()))
    lines.append(f"strict - relaxed added p50: {strict_added:.3f} ms (target <= 2 ms) "
                 f"{'PASS' if strict_added <= 2 else 'FAIL'}")
    for phase in ("nonstream", "stream"):
        lines.append("")
        lines.append(f"max rate, {phase}:")
        for t, v in s[phase].items():
            extra = ""
            if v.get("records_per_s") is not None:
                extra = (f"  records/s {v['records_per_s']:.0f}, backlog mean first/last third "
                         f"{v['backlog_first_third_mean']:.1f}/{v['backlog_last_third_mean']:.1f} (max "
                         f"{v['backlog_max']:.0f}), drained {v['drain_s_after_load']:.2f} s after load, "
                         f"PUTs/record {v['puts_per_record']:.2f}")
            lines.append(f"  {t:8s} {v['rps']:.0f} req/s, p50 {v['p50_ms']:.2f} ms{extra}")
    print("\n".join(lines))
    return {"summary": s, "strict_added_p50_ms": strict_added, "rounds": rounds, "plan": plan.__dict__}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.audit_bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--duration", type=float)
    p.add_argument("--rounds", type=int)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--light-rate", type=float, default=50.0)
    p.add_argument("--store", choices=("s3", "file"), default="s3",
                   help="s3: SeaweedFS on loopback (default); file: a local directory (no network)")
    p.add_argument("--out")
    args = p.parse_args(argv)
    run_and_save("audit-bench", run, args, GatewayUnavailable)


if __name__ == "__main__":
    main()
