"""The benchmark runner: fake backend, bare proxy, gateway and masking gateway side by side on loopback, in one run.

    python -m bench.run [--quick] [--duration S] [--concurrency N] [--rounds N] [--out results.json]

Every server is its own process, and so is the load generator, so each target's CPU time (from /proc) is its
own. Phases run in rounds with the target order rotated each round (ABCD, BCDA, CDAB...) and the medians are
reported, which evens out drift (thermal, other load) between targets. See bench/README.md for the numbers.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

from bench import report
from bench.loadgen import CHAT_BODY
from bench.procs import Child, Loadgen, cpu_seconds, free_port, rss_bytes, stop_all

CHAT = "/v1/chat/completions"
STREAM_BODY = json.dumps({**json.loads(CHAT_BODY), "stream": True})
STREAM_CHUNKS = 200
STREAM_EVENTS = STREAM_CHUNKS + 3
"""SSE events of one streamed answer as the backend sends it: role, the deltas, finish, `[DONE]`."""
POLICIES = Path(__file__).resolve().parent.parent / "policies"
"""The repo's example policy directory: what the `masked` target loads (auth + policy + masking on every channel)."""


@dataclass
class Target:
    name: str
    url: str
    pid: int
    headers: dict[str, str] = field(default_factory=dict)
    """Extra request headers (the gateway's bearer token)."""


@dataclass
class Plan:
    rounds: int
    duration: float
    light_duration: float
    light_rate: float
    concurrency: int
    idle_streams: int
    gateway_starts: int
    warmup: float
    stream_delay_ms: float


def make_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    return Plan(rounds=args.rounds or (2 if quick else 3), duration=args.duration or (1.5 if quick else 5.0),
                light_duration=args.duration or (2.0 if quick else 6.0), light_rate=args.light_rate,
                concurrency=args.concurrency, idle_streams=args.idle_streams,
                gateway_starts=1 if quick else 3, warmup=0.3 if quick else 0.5,
                stream_delay_ms=args.stream_delay_ms)


def phase_config(phase: str, target: Target, plan: Plan) -> dict:
    """Load generator settings for one phase against one target."""
    base = {"url": target.url + CHAT, "headers": {"Content-Type": "application/json", **target.headers},
            "warmup": plan.warmup}
    if phase == "nonstream":
        return {**base, "concurrency": plan.concurrency, "duration": plan.duration}
    if phase == "stream":
        base["headers"]["X-Fake-Delay-Ms"] = str(plan.stream_delay_ms)
        return {**base, "body": STREAM_BODY, "stream": True, "concurrency": plan.concurrency,
                "duration": plan.duration}
    raise ValueError(phase)


async def measure_light(loadgen: Loadgen, targets: list[Target], stream: bool, plan: Plan) -> list[dict]:
    """Latency at a light fixed rate, all targets interleaved request by request (each at ``light_rate``).

    Streams are paced at 1 ms per frame, like a fast model: unpaced, a proxy reads the whole answer in one
    go and TTFC becomes the time to flood it rather than the time to the first token."""
    headers = {"Content-Type": "application/json", **({"X-Fake-Delay-Ms": "1"} if stream else {})}
    result = await loadgen.load({
        "url": targets[0].url + CHAT, "targets": [{"url": t.url + CHAT, "headers": t.headers} for t in targets],
        "headers": headers, "body": STREAM_BODY if stream else CHAT_BODY,
        "stream": stream, "rate": plan.light_rate, "concurrency": 4, "duration": plan.light_duration,
        "warmup": plan.warmup})
    return result["targets"]


async def measure(loadgen: Loadgen, target: Target, phase: str, plan: Plan) -> dict:
    cpu0 = cpu_seconds(target.pid)
    result = await loadgen.load(phase_config(phase, target, plan))
    cpu = cpu_seconds(target.pid) - cpu0
    result["target_cpu_s"] = cpu
    result["cpu_us_per_request"] = cpu * 1e6 / max(1, result["total_requests"])
    if phase == "stream":
        # Chunks are the backend's events. A masking gateway may deliver more (a held tail goes out in its own
        # event when a channel ends), so a target's count is scaled to the backend's events per whole stream.
        delivered = result["events"] / result["ok"] if result["ok"] else None
        result["delivered_events_per_stream"] = delivered
        if delivered:
            for key in ("events", "events_per_s", "total_events"):
                result[key] = result[key] * STREAM_EVENTS / delivered
        result["cpu_us_per_chunk"] = cpu * 1e6 / max(1, result["total_events"])
        result["bytes_per_s"] = result["bytes"] / result["elapsed_s"] if result["elapsed_s"] else 0.0
    return result


async def idle_memory(loadgen: Loadgen, target: Target, n: int) -> dict:
    """RSS growth of the target while ``n`` streams are open and idle (the backend stalls after one frame)."""
    await asyncio.sleep(0.3)
    before = rss_bytes(target.pid)
    cfg = {"url": target.url + CHAT, "body": STREAM_BODY, "hold_streams": n, "timeout": 30.0,
           "headers": {"Content-Type": "application/json", "X-Fake-Stall-After": "1", **target.headers}}
    held = await loadgen.hold(cfg)
    await asyncio.sleep(0.5)  # let buffers settle
    after = rss_bytes(target.pid)
    await loadgen.release()
    return {"streams": n, **held, "rss_before": before, "rss_after": after,
            "bytes_per_stream": (after - before) / held["held"] if held["held"] else None}


def _deep_merge(into: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value
    return into


class GatewayUnavailable(Exception):
    """A gateway target can't run here; the message says why (the other targets still run)."""


async def start_issuer():
    """The dev OIDC issuer, in this process: the gateways only ask it for its JWKS at start-up."""
    try:
        from gateway.auth.dev_issuer import DevIssuer
    except ImportError as exc:
        raise GatewayUnavailable(f"gateway.auth.dev_issuer not importable ({exc})") from None
    issuer = DevIssuer(host="127.0.0.1", port=0, audience="reasoning-gateway")
    await issuer.start()
    return issuer


async def start_gateway(name: str, backend_url: str, issuer, log_dir: Path, plan: Plan, extra_config: dict):
    """``gateway serve`` as a child, started ``plan.gateway_starts`` times (the last one stays up). Returns
    (child, Target, [start-up seconds per start])."""
    script = shutil.which("gateway")  # the installed console script, as operators start it
    command = [script] if script else [sys.executable, "-m", "gateway.cli"]
    startups: list[float] = []
    child = None
    for i in range(plan.gateway_starts):
        port = free_port()
        config = _deep_merge({"server": {"host": "127.0.0.1", "port": port},
                              "upstream": {"url": backend_url},
                              "auth": {"issuer": issuer.url, "audience": "reasoning-gateway"}},
                             copy.deepcopy(extra_config))
        path = log_dir / f"{name}-{i}.yaml"
        path.write_text(yaml.safe_dump(config))
        child = Child(f"{name}-{i}", [*command, "serve", "--config", str(path)], log_dir, cwd=str(log_dir))
        await child.start()
        try:
            startups.append(await child.wait_http_ok(f"http://127.0.0.1:{port}/readyz"))
        except RuntimeError as exc:
            await child.stop()
            raise GatewayUnavailable(f"`gateway serve` did not become ready: {exc}") from None
        if i + 1 < plan.gateway_starts:
            await child.stop()
    token = issuer.mint("bench-user", groups=("engineers",), ttl_s=6 * 3600)
    target = Target(name, f"http://127.0.0.1:{port}", child.pid, {"Authorization": f"Bearer {token}"})
    return child, target, startups


async def warm_up(loadgen: Loadgen, target: Target) -> None:
    """A few requests of each kind, so lazy imports and first-use caches aren't billed to a measurement."""
    for phase, body in (("nonstream", CHAT_BODY), ("stream", STREAM_BODY)):
        result = await loadgen.load({"url": target.url + CHAT, "body": body, "stream": phase == "stream",
                                     "headers": {"Content-Type": "application/json", **target.headers},
                                     "concurrency": 4, "requests": 40})
        if result["errors"]:
            raise RuntimeError(f"{target.name}: warm-up {phase} requests failed: {result['statuses']}")


async def start_backend(log_dir: Path, children: list[Child]) -> str:
    """The fake backend (precomputed answers, `STREAM_CHUNKS` chunks per stream), added to `children`; its URL."""
    backend = await Child("backend", [sys.executable, "-m", "gateway.devtools.backend", "--port", "0", "--chunks",
                                      str(STREAM_CHUNKS), "--precompute"], log_dir).start()
    children.append(backend)
    return await backend.wait_ready_line()


async def start_targets(args: argparse.Namespace, plan: Plan, log_dir: Path, children: list[Child],
                        notes: list[str]):
    """Backend, bare proxy and (each if it starts) the gateway and the masking gateway. Returns (targets,
    start-up times, issuer or None)."""
    py = sys.executable
    backend_url = await start_backend(log_dir, children)
    backend = children[-1]
    bare = await Child("bare_proxy", [py, "-m", "bench.bare_proxy", "--port", "0", "--upstream", backend_url],
                       log_dir).start()
    children.append(bare)
    targets = [Target("direct", backend_url, backend.pid), Target("bare", await bare.wait_ready_line(), bare.pid)]
    startup: dict[str, dict] = {"bare": {"seconds": time.perf_counter() - bare.started_at}}
    if args.no_gateway:
        notes.append("gateway and masked targets skipped (--no-gateway)")
        return targets, startup, None
    extra = (yaml.safe_load(Path(args.gateway_config).read_text()) if args.gateway_config else None) or {}
    if (extra.get("policies") or {}).get("path"):
        notes.append("--gateway-config sets policies.path: the `gateway` target is not auth-only")
    try:
        issuer = await start_issuer()
    except GatewayUnavailable as exc:
        notes.append(f"gateway and masked targets skipped: {exc}".strip()[:1500])
        print(f"bench: {notes[-1]}", file=sys.stderr)
        return targets, startup, None
    # The same config for both; `masked` adds the policy directory (no hot reload: no file polling).
    variants = [("gateway", extra)]
    if args.no_masked:
        notes.append("masked target skipped (--no-masked)")
    else:
        variants.append(("masked", _deep_merge(copy.deepcopy(extra),
                                               {"policies": {"path": str(POLICIES), "reload_s": 0}})))
    for name, config in variants:
        try:
            child, target, startups = await start_gateway(name, backend_url, issuer, log_dir, plan, config)
        except GatewayUnavailable as exc:
            notes.append(f"{name} target skipped: {exc}".strip()[:1500])
            print(f"bench: {notes[-1]}", file=sys.stderr)
            continue
        except BaseException:
            await issuer.stop()
            raise
        children.append(child)
        targets.append(target)
        startup[name] = {"seconds": sorted(startups)[len(startups) // 2], "all": startups}
    return targets, startup, issuer


async def measure_rounds(loadgen: Loadgen, targets: list[Target], plan: Plan, notes: list[str]) -> list[dict]:
    """Every phase against every target, ``plan.rounds`` times, the target order rotated each round."""
    rounds: list[dict] = []
    for r in range(plan.rounds):
        order = targets[r % len(targets):] + targets[:r % len(targets)]
        results: dict[str, dict] = {t.name: {} for t in targets}
        for phase in ("nonstream", "stream"):
            for target in order:
                results[target.name][phase] = await measure(loadgen, target, phase, plan)
        for phase in ("light", "light_stream"):
            for target, result in zip(order, await measure_light(loadgen, order, phase == "light_stream", plan)):
                results[target.name][phase] = result
        notes += [f"round {r + 1} {name} {phase}: {res['errors']} failed requests {res['statuses']}"
                  for name, phases in results.items() for phase, res in phases.items() if res["errors"]]
        print(f"bench: round {r + 1}/{plan.rounds} done", file=sys.stderr)
        rounds.append(results)
    for name, phases in rounds[0].items():
        busy = phases["nonstream"]["loadgen_cpu_s"] / max(1e-9, phases["nonstream"]["elapsed_s"] + plan.warmup)
        if busy > 0.85:
            notes.append(f"the load generator used {busy:.0%} of a CPU against {name}: its req/s is a floor")
    return rounds


async def run(args: argparse.Namespace) -> dict:
    plan = make_plan(args)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    children: list[Child] = []
    issuer = None
    notes: list[str] = []
    load_before = os.getloadavg()[0]
    loadgen = await Loadgen().start()
    try:
        targets, startup, issuer = await start_targets(args, plan, log_dir, children, notes)
        for target in targets:
            await warm_up(loadgen, target)
        print(f"bench: targets {', '.join(t.name for t in targets)}; {plan}", file=sys.stderr)
        idle = {t.name: await idle_memory(loadgen, t, plan.idle_streams) for t in targets}
        notes += [f"{name}: only {m['held']} of {m['streams']} idle streams opened ({m['failed']} failed)"
                  for name, m in idle.items() if m["held"] < m["streams"]]
        rounds = await measure_rounds(loadgen, targets, plan, notes)
        for name, memory in idle.items():  # measured once: the medians are of one value
            rounds[0][name]["idle"] = memory
            if name in startup:
                rounds[0][name]["startup"] = startup[name]
        if load_before > 0.5 * (os.cpu_count() or 1):
            notes.append(f"load average was {load_before:.1f} before the run on {os.cpu_count()} CPUs: other work "
                         "shares the machine, so throughput ratios are noisy; CPU µs per request/chunk are steadier")
        summary = report.medians(rounds)
        for name, phases in summary.items():
            delivered = phases["stream"].get("delivered_events_per_stream")
            if delivered is not None and abs(delivered - STREAM_EVENTS) > 0.01:
                notes.append(f"{name} delivered {delivered:.1f} SSE events per {STREAM_EVENTS}-event stream; its "
                             f"chunks/s and CPU per chunk count the backend's {STREAM_EVENTS}")
        check_rows = report.checks(summary)
        print(report.render(summary, [t.name for t in targets], check_rows, notes))
        machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "aiohttp": aiohttp.__version__,
                   "platform": platform.platform(), "load_average_before": load_before}
        return {"plan": plan.__dict__, "machine": machine, "targets": [t.name for t in targets],
                "summary": summary, "checks": check_rows, "derived": report.derived(summary), "rounds": rounds, "notes": notes, "logs": str(log_dir)}
    finally:
        await stop_all(loadgen, children, issuer)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short phases, 2 rounds: about a minute in all")
    p.add_argument("--duration", type=float, help="seconds per measured phase (default 5, quick 1.5)")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop concurrency (default 32)")
    p.add_argument("--rounds", type=int, help="rounds of all phases, medians reported (default 3, quick 2)")
    p.add_argument("--light-rate", type=float, default=50.0, help="req/s of the latency phase (default 50)")
    p.add_argument("--stream-delay-ms", type=float, default=0.0,
                   help="pause between frames in the stream phase (default 0: as fast as possible)")
    p.add_argument("--idle-streams", type=int, default=200, help="open idle streams for the memory phase")
    p.add_argument("--gateway-config", help="YAML merged into the gateway's generated config")
    p.add_argument("--no-gateway", action="store_true",
                   help="only the backend and the bare proxy (no gateway, no masked)")
    p.add_argument("--no-masked", action="store_true",
                   help=f"skip the `masked` target (the gateway with {POLICIES.name}/ loaded)")
    p.add_argument("--out", help="write the full results as JSON here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = asyncio.run(run(args))
    results["wall_s"] = time.perf_counter() - t0
    print(f"\nbench: finished in {results['wall_s']:.1f} s (logs in {results['logs']})")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
