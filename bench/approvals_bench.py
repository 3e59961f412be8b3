"""Approvals and the kill switch across two replicas, with real processes on loopback and one private Redis:

    python -m bench.approvals_bench [--quick] [--out results.json]

Processes: the fake backend, a private `redis-server` (free loopback port, never 6379), two `gateway serve`
replicas A and B (the repo's `policies/`, approvals and revocations on that Redis, `admin.approver_groups:
[sre-approvers]`, `approvals.hold_s: 60`), the load generator (`bench.loadgen --serve`) and this harness, which
runs the dev OIDC issuer, holds the parked requests and drives the admin APIs.

Measured (issue 5 "Targets"):
1. release latency after a decision — a request needing approval (a `CUST-…` id in the prompt, a requester
   outside privacy-team) parks on A; an approver decides it through A's admin API (same replica) or B's (cross
   replica). Latency = from just before the decision POST is sent to the parked client receiving its response
   headers (the request then went to the backend and back: nothing is subtracted). Targets: p99 <= 50 ms same
   replica, <= 200 ms across replicas;
2. 1,000 parked requests at once — RSS of A before/after parking them (bytes per parked request, target <= 64 KB);
   the closed-loop req/s of unparked traffic on A with and without them, in ABBA pairs (target: no effect; PASS
   when the median per-pair ratio is >= 0.90, the noise of a shared 2-core machine); each time, half are then
   cancelled by their clients disconnecting and the rest denied through B, and every one must be released;
3. revocation propagation — `POST /admin/revocations` on B for a fresh subject while A is polled in a tight loop
   with that subject's token: time from just before the POST is sent to A's first 401 `token_revoked` (target
   <= 1 s p99); and with a live stream on A, the time from the POST to the stream's `stream_terminated` event.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.loadgen import CHAT_BODY, percentile
from bench.procs import Child, Loadgen, cpu_seconds, rss_bytes, run_and_save, stop_all
from bench.run import (
    start_backend,
    CHAT,
    POLICIES,
    GatewayUnavailable,
    Plan,
    Target,
    start_gateway,
    start_issuer,
)

APPROVER_GROUP = "sre-approvers"
ADMIN_GROUP = "gateway-admins"
REQUESTER_GROUPS = ("engineers",)
HOLD_S = 60.0
SLOW_STREAM = {"X-Fake-Chunks": "200", "X-Fake-Delay-Ms": "50"}  # a 10 s stream


def gated_body(n: int) -> str:
    """A chat request the rule `customer-data-needs-approval` parks; ``n`` makes its body (fingerprint) unique."""
    return json.dumps({"model": "fake-reasoner-1", "messages": [
        {"role": "user", "content": f"Summarise the open tickets of customer CUST-{n:08d} in three bullet points."}]})


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def stats_ms(values_s: list[float]) -> dict:
    v = sorted(x * 1000 for x in values_s)
    return {"n": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "max_ms": v[-1] if v else None,
            "mean_ms": statistics.fmean(v) if v else None}


class Api:
    """One replica's HTTP surface as seen by the harness."""

    def __init__(self, http: aiohttp.ClientSession, target: Target) -> None:
        self.http, self.url, self.name = http, target.url, target.name

    async def pending(self, token: str) -> list[dict]:
        out, cursor = [], None
        while True:
            query = "?state=pending&limit=500" + (f"&cursor={cursor}" if cursor else "")
            async with self.http.get(self.url + "/admin/approvals" + query,
                                     headers={"Authorization": f"Bearer {token}"}) as r:
                body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"{self.name}: list approvals -> {r.status} {body}")
            out += body["approvals"]
            cursor = body.get("next")
            if not cursor:
                return out

    async def count(self, token: str, state: str) -> int:
        n, cursor = 0, None
        while True:
            query = f"?state={state}&limit=500" + (f"&cursor={cursor}" if cursor else "")
            async with self.http.get(self.url + "/admin/approvals" + query,
                                     headers={"Authorization": f"Bearer {token}"}) as r:
                body = await r.json()
            n += len(body["approvals"])
            cursor = body.get("next")
            if not cursor:
                return n

    async def decide(self, token: str, approval_id: str, decision: str) -> tuple[int, dict]:
        async with self.http.post(self.url + f"/admin/approvals/{approval_id}/decision",
                                  json={"decision": decision, "reason": "bench"},
                                  headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, await r.json()

    async def revoke(self, token: str, subject: str) -> tuple[int, dict]:
        async with self.http.post(self.url + "/admin/revocations",
                                  json={"subject": subject, "reason": "bench", "ttl_s": 600},
                                  headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, await r.json()


async def parked_request(http: aiohttp.ClientSession, url: str, token: str, body: str) -> dict:
    """Send one request that parks; returns when its answer is complete: status, error code, header arrival."""
    try:
        async with http.post(url + CHAT, data=body, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"}) as r:
            t_headers = time.perf_counter()
            raw = await r.read()
            code = None
            if r.status != 200:
                try:
                    code = json.loads(raw)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = raw[:80].decode(errors="replace")
            return {"status": r.status, "code": code, "t_headers": t_headers, "t_end": time.perf_counter()}
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {"status": 0, "code": type(exc).__name__, "t_headers": None, "t_end": time.perf_counter()}


# -- 1. release latency -----------------------------------------------------------------------------------------

async def release_latency(http, parker_http, a: Api, b: Api, issuer, approver: str, n_each: int,
                          warmup: int, base: int) -> dict:
    """Park requests on A one at a time and approve each through A or B (alternating); ``warmup`` untimed first."""
    samples: dict[str, list[dict]] = {"same": [], "cross": []}
    problems: list[str] = []
    for i in range(warmup + 2 * n_each):
        route = "same" if i % 2 == 0 else "cross"
        sub = f"rel-{base + i}"
        token = issuer.mint(sub, REQUESTER_GROUPS, ttl_s=3600)
        task = asyncio.create_task(parked_request(parker_http, a.url, token, gated_body(base + i)))
        approval = None
        deadline = time.perf_counter() + 10
        while approval is None and time.perf_counter() < deadline and not task.done():
            found = [x for x in await a.pending(approver) if x["requester"]["sub"] == sub]
            approval = found[0] if found else None
            if approval is None:
                await asyncio.sleep(0.002)
        if approval is None:
            task.cancel()
            problems.append(f"{sub}: never became pending ({(await asyncio.gather(task, return_exceptions=True))})")
            continue
        await asyncio.sleep(0.02)  # parked in its wait, not between `open` and the hold
        if task.done():
            problems.append(f"{sub}: answered before any decision: {task.result()}")
            continue
        api = a if route == "same" else b
        t0 = time.perf_counter()
        status, body = await api.decide(approver, approval["id"], "approve")
        t_decided = time.perf_counter()
        result = await asyncio.wait_for(task, 30)
        if status != 200 or result["status"] != 200:
            problems.append(f"{sub}: decision {status} {body.get('error', '')}, parked request {result['status']} "
                            f"{result['code']}")
            continue
        if i < warmup:
            continue
        samples[route].append({"release_s": result["t_headers"] - t0, "decision_rtt_s": t_decided - t0,
                               "after_decision_response_s": result["t_headers"] - t_decided})
    out = {}
    for route, rows in samples.items():
        out[route] = {
            "release": stats_ms([r["release_s"] for r in rows]),
            "decision_post_rtt": stats_ms([r["decision_rtt_s"] for r in rows]),
            "headers_after_decision_response": stats_ms([r["after_decision_response_s"] for r in rows]),
        }
    out["problems"] = problems
    return out


# -- 2. 1,000 parked requests -------------------------------------------------------------------------------------

async def wait_count(b: Api, token: str, state: str, want, timeout: float) -> tuple[int, float]:
    """Poll B's listing until ``want(count)``; returns (last count, seconds waited). B, not A: listing 1,000
    approvals builds a few MB of JSON, which must not land in A's RSS."""
    t0 = time.perf_counter()
    n = await b.count(token, state)
    while not want(n) and time.perf_counter() - t0 < timeout:
        await asyncio.sleep(0.1)
        n = await b.count(token, state)
    return n, time.perf_counter() - t0


async def unparked_load(loadgen: Loadgen, a: Target, duration: float, concurrency: int) -> dict:
    cpu0 = cpu_seconds(a.pid)
    r = await loadgen.load({"url": a.url + CHAT, "body": CHAT_BODY,
                            "headers": {"Content-Type": "application/json", **a.headers},
                            "concurrency": concurrency, "duration": duration, "warmup": 0.5})
    cpu = cpu_seconds(a.pid) - cpu0
    return {"rps": r["rps"], "p50_ms": r["latency_p50_ms"], "p99_ms": r["latency_p99_ms"], "ok": r["ok"],
            "errors": r["errors"], "statuses": r["statuses"], "loadgen_cpu_s": r["loadgen_cpu_s"],
            "elapsed_s": r["elapsed_s"], "gateway_cpu_s": cpu,
            "cpu_us_per_request": cpu / r["total_requests"] * 1e6 if r["total_requests"] else None}


def _codes(results: list[dict]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for r in results:
        key = f"{r['status']} {r['code']}"
        codes[key] = codes.get(key, 0) + 1
    return codes


async def park_many(parker_http, a: Api, b: Api, a_target: Target, issuer, approver: str, n: int, base: int,
                    measure_rss: bool, ramp_s: float) -> tuple[list[asyncio.Task], dict]:
    """Send ``n`` requests that park on A, all at once (``ramp_s`` 0) or spread evenly over ``ramp_s`` seconds;
    returns once each is pending or answered (an answer before any decision is a failure: e.g. 503)."""
    token = issuer.mint("parker", REQUESTER_GROUPS, ttl_s=3600)
    rss0 = rss_bytes(a_target.pid) if measure_rss else None
    t0 = time.perf_counter()
    tasks = []
    for i in range(n):
        if ramp_s and (delay := t0 + ramp_s * i / n - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(parked_request(parker_http, a.url, token, gated_body(base + i))))
    # pending approvals and early answers can overlap (an approval opened, then its wait failed): stop on either
    count, _ = await wait_count(b, approver, "pending", lambda c: c + sum(t.done() for t in tasks) >= n,
                                min(20.0, HOLD_S / 3))
    early = [t.result() for t in tasks if t.done()]
    held = n - len(early)
    info: dict = {"sent": n, "pending": count, "held": held, "park_s": time.perf_counter() - t0,
                  "answered_early": len(early), "early_answers": _codes(early), "ramp_s": ramp_s}
    if early:
        info["early_answer_after_s"] = stats_ms([r["t_end"] - t0 for r in early])
    if measure_rss:
        await asyncio.sleep(1.0)  # every exchange is in its wait; nothing else in flight
        rss1 = rss_bytes(a_target.pid)
        await asyncio.sleep(0.5)
        rss2 = rss_bytes(a_target.pid)
        info.update({"rss_before": rss0, "rss_after": rss1, "rss_after_0_5s_later": rss2,
                     "bytes_per_parked": (max(rss1, rss2) - rss0) / held if held else None})
    return tasks, info


async def release_all(tasks: list[asyncio.Task], b: Api, approver: str) -> dict:
    """Cancel the second half by disconnecting their clients, deny every pending approval through B; every parked
    request must end (the denied ones with 403 approval_denied) and nothing may stay pending."""
    half = len(tasks) // 2
    to_cancel = [t for t in tasks[half:] if not t.done()]
    to_deny = [t for t in tasks[:half] if not t.done()]
    before = await b.count(approver, "pending")
    for t in to_cancel:
        t.cancel()
    await asyncio.gather(*to_cancel, return_exceptions=True)
    left, cancel_s = await wait_count(b, approver, "pending", lambda c: c <= before - len(to_cancel), 30)
    pending = await b.pending(approver)
    t1 = time.perf_counter()
    limit = asyncio.Semaphore(16)
    deny_status: dict[int, int] = {}

    async def deny(approval_id: str) -> None:
        async with limit:
            status, _ = await b.decide(approver, approval_id, "deny")
            deny_status[status] = deny_status.get(status, 0) + 1

    await asyncio.gather(*(deny(x["id"]) for x in pending))
    done, not_done = await asyncio.wait(to_deny, timeout=30) if to_deny else (set(), set())
    deny_s = time.perf_counter() - t1
    codes = _codes([t.result() for t in done])
    for t in not_done:
        t.cancel()
    still = await b.count(approver, "pending")
    ok = (codes == ({"403 approval_denied": len(to_deny)} if to_deny else {}) and not not_done and still == 0
          and left <= before - len(to_cancel))
    return {"cancelled_by_disconnect": len(to_cancel), "pending_before": before, "pending_after_cancel": left,
            "cancel_visible_s": cancel_s, "denied_through_b": len(pending), "deny_statuses": deny_status,
            "denied_client_answers": codes, "not_released": len(not_done), "deny_all_s": deny_s,
            "pending_after": still, "all_released": ok}


async def parked_thousand(loadgen, parker_http, a: Api, b: Api, a_target: Target, issuer, approver: str,
                          n: int, pairs: int, duration: float, concurrency: int, ramp_s: float) -> dict:
    """``pairs`` with/without pairs in ABBA order (park, load, release, load | load, park, load, release | ...), so
    drift on the shared machine falls on both sides; RSS is taken at the first park only (fresh process)."""
    rounds = []
    memory = None
    for p in range(pairs):
        rnd: dict = {"order": "with-first" if p % 2 == 0 else "without-first"}
        if p % 2:
            rnd["without_parked"] = await unparked_load(loadgen, a_target, duration, concurrency)
        tasks, info = await park_many(parker_http, a, b, a_target, issuer, approver, n, 20_000_000 + p * n,
                                      measure_rss=p == 0, ramp_s=ramp_s)
        if p == 0:
            memory = info
        rnd["park"] = info
        rnd["with_parked"] = await unparked_load(loadgen, a_target, duration, concurrency)
        rnd["still_held_after_load"] = sum(not t.done() for t in tasks)
        rnd["release"] = await release_all(tasks, b, approver)
        if p % 2 == 0:
            rnd["without_parked"] = await unparked_load(loadgen, a_target, duration, concurrency)
        w, wo = rnd["with_parked"], rnd["without_parked"]
        rnd["ratio"] = w["rps"] / wo["rps"] if wo["rps"] else None
        rounds.append(rnd)
        print(f"approvals-bench: parked-{n} pair {p + 1}/{pairs}: with {w['rps']:.0f} req/s "
              f"({w['cpu_us_per_request']:.0f} us CPU/req), without {wo['rps']:.0f} req/s "
              f"({wo['cpu_us_per_request']:.0f} us CPU/req)", file=sys.stderr)

    def med(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    with_rps, without_rps = med("with_parked", "rps"), med("without_parked", "rps")
    with_cpu, without_cpu = med("with_parked", "cpu_us_per_request"), med("without_parked", "cpu_us_per_request")
    return {"memory": memory, "rounds": rounds, "with_rps": with_rps, "without_rps": without_rps,
            # the median of per-pair ratios: the two halves of a pair ran seconds apart, under the same neighbours
            "ratio": statistics.median(r["ratio"] for r in rounds),
            "ratio_of_medians": with_rps / without_rps if without_rps else None,
            "with_cpu_us_per_request": with_cpu, "without_cpu_us_per_request": without_cpu,
            "cpu_ratio": with_cpu / without_cpu if without_cpu else None,
            "all_parked": all(r["park"]["held"] == n and r["still_held_after_load"] == n for r in rounds),
            "early_answers": sum(r["park"]["answered_early"] for r in rounds),
            "all_released": all(r["release"]["all_released"] for r in rounds)}


# -- 3. revocation ---------------------------------------------------------------------------------------------

async def poll_until_revoked(http: aiohttp.ClientSession, url: str, headers: dict, started: asyncio.Event,
                             seen: dict) -> tuple[float, float]:
    """``GET /v1/models`` back to back until 401 `token_revoked`; returns (its arrival, its send time).
    ``seen`` counts the polls and those cut in flight."""
    while True:
        sent = time.perf_counter()
        async with http.get(url + "/v1/models", headers=headers) as r:
            raw = await r.read()
            got = time.perf_counter()
        seen["polls"] += 1
        started.set()
        if r.status == 401 and b"token_revoked" in raw:
            return got, sent
        if r.status == 502 and b"stream_terminated" in raw:
            seen["cut_in_flight"] += 1  # the poll in flight when the revocation landed: A ends it (see the README)
            continue
        if r.status != 200:
            raise RuntimeError(f"unexpected {r.status}: {raw[:200]!r}")


async def revocation_propagation(poll_http, a: Api, b: Api, issuer, admin: str, n: int, base: int) -> dict:
    rows, problems = [], []
    for i in range(n):
        sub = f"revoked-{base + i}"
        headers = {"Authorization": f"Bearer {issuer.mint(sub, REQUESTER_GROUPS, ttl_s=3600)}"}
        started, seen = asyncio.Event(), {"polls": 0, "cut_in_flight": 0}
        poller = asyncio.create_task(poll_until_revoked(poll_http, a.url, headers, started, seen))
        await started.wait()  # the token works and the loop is running
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        status, body = await b.revoke(admin, sub)
        t_post = time.perf_counter()
        if status != 201:
            poller.cancel()
            problems.append(f"{sub}: revocation POST -> {status} {body}")
            continue
        try:
            got, sent = await asyncio.wait_for(poller, 10)
        except (TimeoutError, RuntimeError) as exc:
            problems.append(f"{sub}: {exc!r}")
            continue
        rows.append({"propagation_s": got - t0, "post_rtt_s": t_post - t0, "after_post_response_s": got - t_post,
                     "first_401_poll_sent_s": sent - t0, **seen})
    return {"propagation": stats_ms([r["propagation_s"] for r in rows]),
            "post_rtt": stats_ms([r["post_rtt_s"] for r in rows]),
            "first_401_poll_sent": stats_ms([r["first_401_poll_sent_s"] for r in rows]),
            "in_flight_polls_cut": sum(r["cut_in_flight"] for r in rows),
            "samples": rows, "problems": problems}


STREAM_BODY = json.dumps({"model": "fake-reasoner-1", "stream": True,
                          "messages": [{"role": "user", "content": "Explain the plan step by step."}]})


async def watch_stream(http: aiohttp.ClientSession, url: str, token: str, first: asyncio.Event, box: dict) -> None:
    """Read a slow stream to its end; ``box`` gets the arrival of the `stream_terminated` event and the last event."""
    got = b""
    async with http.post(url + CHAT, data=STREAM_BODY, headers={"Authorization": f"Bearer {token}",
                                                                "Content-Type": "application/json",
                                                                **SLOW_STREAM}) as r:
        box["status"] = r.status
        async for chunk in r.content.iter_any():
            got += chunk
            first.set()
            if "t_terminated" not in box and b"stream_terminated" in got[-len(chunk) - 32:]:
                box["t_terminated"] = time.perf_counter()
    box["t_end"] = time.perf_counter()
    box["last_event"] = got.decode(errors="replace").strip().split("\n\n")[-1][:300]
    first.set()


async def stream_cut(http, a: Api, b: Api, issuer, admin: str, n: int, base: int) -> dict:
    rows, problems = [], []
    for i in range(n):
        sub = f"streamer-{base + i}"
        first, box = asyncio.Event(), {}
        task = asyncio.create_task(watch_stream(http, a.url, issuer.mint(sub, REQUESTER_GROUPS, ttl_s=3600),
                                                first, box))
        await asyncio.wait_for(first.wait(), 10)
        await asyncio.sleep(0.3)
        if task.done():
            problems.append(f"{sub}: stream ended before the revocation ({box})")
            continue
        t0 = time.perf_counter()
        status, rbody = await b.revoke(admin, sub)
        if status != 201:
            problems.append(f"{sub}: revocation POST -> {status} {rbody}")
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            problems.append(f"{sub}: stream not cut within 15 s")
            task.cancel()
            continue
        if "t_terminated" not in box:
            problems.append(f"{sub}: stream ended without stream_terminated: {box.get('last_event')}")
            continue
        rows.append({"terminated_s": box["t_terminated"] - t0, "closed_s": box["t_end"] - t0,
                     "last_event": box["last_event"]})
    return {"terminated": stats_ms([r["terminated_s"] for r in rows]),
            "closed": stats_ms([r["closed_s"] for r in rows]), "samples": rows, "problems": problems}


# -- the run ---------------------------------------------------------------------------------------------------

def gateway_extra(redis_url: str) -> dict:
    return {
        "policies": {"path": str(POLICIES), "reload_s": 0},
        "logging": {"access_log": False},
        "approvals": {"backend": "redis", "redis_url": redis_url, "hold_s": HOLD_S},
        "revocations": {"backend": "redis", "redis_url": redis_url},
        "admin": {"approver_groups": [APPROVER_GROUP], "admin_groups": [ADMIN_GROUP]},
    }


async def run(args: argparse.Namespace) -> dict:
    from tests.redis_server import running_redis

    quick = args.quick
    sizes = {"release_per_route": args.release or (50 if quick else 200), "parked": args.parked,
             "pairs": args.pairs or (2 if quick else 6), "load_duration_s": args.duration or (1.5 if quick else 2.5),
             "concurrency": args.concurrency, "revocations": args.revocations or (20 if quick else 50),
             "stream_cuts": 5 if quick else 10, "hold_s": HOLD_S,
             "park_ramp_s": args.park_ramp}
    plan = Plan(rounds=1, duration=1.0, light_duration=1.0, light_rate=50, concurrency=args.concurrency,
                idle_streams=0, gateway_starts=1, warmup=0.5, stream_delay_ms=0)
    tmp = Path(tempfile.mkdtemp(prefix="approvals-bench-"))
    children: list[Child] = []
    issuer = None
    started = time.perf_counter()
    load_start = loadavg()
    results: dict = {"sizes": sizes, "cpus": os.cpu_count(), "loadavg_start": load_start, "log_dir": str(tmp)}
    with running_redis() as redis:
        loadgen = await Loadgen().start()
        try:
            backend_url = await start_backend(tmp, children)
            issuer = await start_issuer()
            extra = gateway_extra(redis.url)
            a_child, a_target, _ = await start_gateway("gw-a", backend_url, issuer, tmp, plan, extra)
            children.append(a_child)
            b_child, b_target, _ = await start_gateway("gw-b", backend_url, issuer, tmp, plan, extra)
            children.append(b_child)
            approver = issuer.mint("approver-1", (APPROVER_GROUP,), ttl_s=6 * 3600)
            admin = issuer.mint("root", (ADMIN_GROUP,), ttl_s=6 * 3600)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            async with aiohttp.ClientSession(timeout=timeout) as http, \
                    aiohttp.ClientSession(timeout=timeout) as poll_http, \
                    aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as parker_http:
                a, b = Api(http, a_target), Api(http, b_target)
                # warm-up: unparked traffic, a few park/approve cycles through both admin APIs, a revocation
                await unparked_load(loadgen, a_target, 1.0, 4)
                await release_latency(http, parker_http, a, b, issuer, approver, 0, 6, 9_000_000)
                await revocation_propagation(poll_http, a, b, issuer, admin, 2, 900)
                # 2 first: RSS is measured on a process that has not yet run the other phases (RSS never shrinks)
                results["parked"] = await parked_thousand(
                    loadgen, parker_http, a, b, a_target, issuer, approver, sizes["parked"], sizes["pairs"],
                    sizes["load_duration_s"], sizes["concurrency"], sizes["park_ramp_s"])
                results["release"] = await release_latency(http, parker_http, a, b, issuer, approver,
                                                           sizes["release_per_route"], 4, 10_000_000)
                print("approvals-bench: release latency done", file=sys.stderr)
                results["revocation"] = await revocation_propagation(poll_http, a, b, issuer, admin,
                                                                     sizes["revocations"], 0)
                results["stream_cut"] = await stream_cut(http, a, b, issuer, admin, sizes["stream_cuts"], 0)
        finally:
            await stop_all(loadgen, children, issuer)
    results["loadavg_end"] = loadavg()
    results["runtime_s"] = time.perf_counter() - started
    results["checks"] = checks(results)
    report(results)
    return results


def checks(r: dict) -> list[dict]:
    rel, parked, rev, cut = r["release"], r["parked"], r["revocation"], r["stream_cut"]
    mem = parked["memory"]
    rows = [
        ("release latency, same replica, p99", rel["same"]["release"]["p99_ms"], "ms", "<= 50", 50, "le"),
        ("release latency, cross replica, p99", rel["cross"]["release"]["p99_ms"], "ms", "<= 200", 200, "le"),
        (f"RSS per parked request ({mem['held']} held)",
         mem["bytes_per_parked"] / 1024 if mem.get("bytes_per_parked") is not None else None, "KB", "<= 64", 64, "le"),
        ("unparked req/s with/without parked (pair median)", parked["ratio"], "", ">= 0.90 (no effect)", 0.90, "ge"),
        (f"every pair: all {r['sizes']['parked']} parked, none answered early", float(parked["all_parked"]), "",
         "yes", 1.0, "ge"),
        ("every pair: all cancelled/denied released", float(parked["all_released"]), "", "yes", 1.0, "ge"),
        ("revocation propagation B -> A, p99", rev["propagation"]["p99_ms"], "ms", "<= 1000", 1000, "le"),
        ("revocation -> stream_terminated on A, max", cut["terminated"]["max_ms"], "ms", "<= 1000", 1000, "le"),
    ]
    out = []
    for name, value, unit, target, limit, op in rows:
        ok = value is not None and (value <= limit if op == "le" else value >= limit)
        out.append({"check": name, "value": value, "unit": unit, "target": target, "pass": ok})
    return out


def _f(v, digits=1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report(r: dict) -> None:
    s = r["sizes"]
    rel, parked, rev, cut = r["release"], r["parked"], r["revocation"], r["stream_cut"]
    mem = parked["memory"]
    lines = [(f"approvals bench: 2 gateway replicas + private redis on loopback, {r['cpus']} CPUs shared; "
              f"load average {r['loadavg_start'][0]:.2f} at start, {r['loadavg_end'][0]:.2f} at end; "
              f"{r['runtime_s']:.0f} s"), ""]
    lines.append(f"1. release latency (decision POST sent -> parked client has response headers; "
                 f"{s['release_per_route']} per route, approve, non-stream)")
    for route in ("same", "cross"):
        x = rel[route]
        lines.append(f"   {route:5s} replica: p50 {_f(x['release']['p50_ms'])} ms, p99 {_f(x['release']['p99_ms'])} "
                     f"ms, max {_f(x['release']['max_ms'])} ms  (decision POST round trip p50 "
                     f"{_f(x['decision_post_rtt']['p50_ms'])} ms)")
    if rel["problems"]:
        lines.append(f"   problems: {len(rel['problems'])}: {rel['problems'][:3]}")
    lines.append("")
    arrival = f"spread over {s['park_ramp_s']:g} s" if s["park_ramp_s"] else "all sent at once"
    lines.append(f"2. {s['parked']} requests parked on A ({arrival}; held by this harness, limit=0 connector)")
    lines.append(f"   A RSS {mem['rss_before'] / 2**20:.1f} MB -> {mem['rss_after'] / 2**20:.1f} MB "
                 f"({mem['rss_after_0_5s_later'] / 2**20:.1f} MB 0.5 s later) with {mem['held']} held: "
                 f"{_f(mem['bytes_per_parked'] and mem['bytes_per_parked'] / 1024)} KB per parked request")
    for i, rnd in enumerate(parked["rounds"]):
        w, wo, rl, pk = rnd["with_parked"], rnd["without_parked"], rnd["release"], rnd["park"]
        early = (f"; {pk['answered_early']} answered before any decision: {pk['early_answers']} after "
                 f"{_f(pk['early_answer_after_s']['p50_ms'], 0)} ms p50") if pk["answered_early"] else ""
        lines.append(f"   pair {i + 1}: {pk['held']}/{pk['sent']} held, all pending after {pk['park_s']:.2f} s{early}")
        lines.append(f"      {rnd['order']}: with parked {w['rps']:.0f} req/s (p50/p99 {_f(w['p50_ms'])}/"
                     f"{_f(w['p99_ms'])} ms, {w['cpu_us_per_request']:.0f} us CPU/req, {w['errors']} errors), "
                     f"without {wo['rps']:.0f} req/s (p50/p99 {_f(wo['p50_ms'])}/{_f(wo['p99_ms'])} ms, "
                     f"{wo['cpu_us_per_request']:.0f} us CPU/req, {wo['errors']} errors), ratio {_f(rnd['ratio'], 3)}")
        lines.append(f"      released: {rl['cancelled_by_disconnect']} cancelled by client disconnect (pending "
                     f"{rl['pending_after_cancel']} after {rl['cancel_visible_s']:.2f} s), {rl['denied_through_b']} "
                     f"denied via B -> clients got {rl['denied_client_answers']} within {rl['deny_all_s']:.2f} s; "
                     f"pending after: {rl['pending_after']}")
    lines.append(f"   medians (unparked closed loop, c={s['concurrency']}, {s['load_duration_s']} s each): with "
                 f"{parked['with_rps']:.0f} req/s, without {parked['without_rps']:.0f} req/s (ratio "
                 f"{_f(parked['ratio_of_medians'], 3)}); median of the per-pair ratios {_f(parked['ratio'], 3)}")
    lines.append(f"   gateway A CPU per request (medians) with/without "
                 f"{parked['with_cpu_us_per_request']:.0f}/{parked['without_cpu_us_per_request']:.0f} us "
                 f"(ratio {_f(parked['cpu_ratio'], 3)})")
    lines.append("")
    lines.append(f"3. revocation B -> A ({rev['propagation']['n']} subjects; POST sent -> first 401 token_revoked "
                 f"on A, polled back to back)")
    lines.append(f"   p50 {_f(rev['propagation']['p50_ms'])} ms, p99 {_f(rev['propagation']['p99_ms'])} ms, max "
                 f"{_f(rev['propagation']['max_ms'])} ms (POST round trip p50 {_f(rev['post_rtt']['p50_ms'])} ms)")
    if rev.get("in_flight_polls_cut"):
        lines.append(f"   ({rev['in_flight_polls_cut']} polls in flight when a revocation landed were ended with 502 "
                     f"stream_terminated; the next poll got 401)")
    lines.append(f"   live stream on A cut ({cut['terminated']['n']} streams): stream_terminated p50 "
                 f"{_f(cut['terminated']['p50_ms'])} ms, max {_f(cut['terminated']['max_ms'])} ms after the POST")
    for part in (rev, cut):
        if part["problems"]:
            lines.append(f"   problems: {len(part['problems'])}: {part['problems'][:3]}")
    lines.append("")
    lines.append(f"{'check':50s} {'value':>10s}  {'target':22s} result")
    for c in r["checks"]:
        if c["target"] == "yes":
            value = "yes" if c["value"] else "no"
        else:
            value = f"{_f(c['value'], 1 if c['unit'] else 3)} {c['unit']}"
        lines.append(f"{c['check']:50s} {value:>10s}  {c['target'] + ' ' + c['unit']:22s} "
                     f"{'PASS' if c['pass'] else 'FAIL'}")
    lines.append("")
    lines.append("p99 is nearest-rank: with n samples it is the ceil(0.99 n)-th smallest (the max when n < 100). "
                 f"Logs and configs: {r['log_dir']}")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.approvals_bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="< 1 min: fewer samples, 2 with/without pairs")
    p.add_argument("--release", type=int, help="parked requests decided per route (same / cross replica)")
    p.add_argument("--parked", type=int, default=1000, help="requests parked at once (default 1000)")
    p.add_argument("--park-ramp", type=float, default=0.0,
                   help="spread the parked requests' arrivals over this many seconds (default 0: all at once)")
    p.add_argument("--duration", type=float, help="seconds per unparked-load phase")
    p.add_argument("--pairs", type=int, help="with/without pairs of the unparked load (2 quick, 6 full)")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop clients of the unparked load")
    p.add_argument("--revocations", type=int, help="subjects revoked for the propagation figure")
    p.add_argument("--out")
    args = p.parse_args(argv)
    results = run_and_save("approvals-bench", run, args, GatewayUnavailable)
    if not all(c["pass"] for c in results["checks"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
