"""Masking evaluation: the seeded corpus streamed through a real gateway process, chunked every which way.

    python -m bench.masking_eval.run [--quick] [--seeds 5] [--out results.json]

Processes: a dev OIDC issuer (in this process; the gateway only fetches its JWKS), the corpus upstream
(``python -m bench.masking_eval.upstream``) and ``gateway serve`` with ``policies: {path: ...}``. For every
document: one non-streaming request (the one-shot reference) and one stream per chunking strategy (1-char,
1–20 and 20–200 character events, each re-cut at byte level). What the client receives is reassembled and
scored: leaks, recall per detector, false positives per 10 KB of benign text, stream == one-shot, and the
gateway's held-back text if its metrics expose it. See bench/README.md ("Masking evaluation").
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import yaml

from bench.masking_eval import analysis, wire
from bench.masking_eval.catalog import REPO
from bench.masking_eval.corpus import Corpus, Doc, generate, summary
from bench.masking_eval.upstream import model_name
from bench.masking_eval.values import EDGE_VARIANTS
from bench.procs import Child, free_port

CHAT = "/v1/chat/completions"
REDACTED_TOKEN = f"[{analysis.REDACTED}]"
TARGETS = {"leaks": 0, "stream_equals_oneshot": 1.0, "recall": 0.995, "fp_per_10kb": 1.0}


@dataclass
class Plan:
    seeds: list[int]
    planted_docs: int
    benign_docs: int
    strategies: list[str]
    one_char_share: float
    """Fraction of the documents also streamed with 1-character events (the costliest strategy)."""
    writes: int
    """Socket writes per stream (byte-level cuts + 1)."""
    pause_ms: float
    concurrency: int


def make_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    seeds = list(range(1, (args.seeds or (1 if quick else 5)) + 1))
    return Plan(seeds=seeds, planted_docs=args.planted_docs or (32 if quick else 48),
                benign_docs=args.benign_docs or (12 if quick else 16), strategies=list(wire.STRATEGIES),
                one_char_share=args.one_char_share if args.one_char_share is not None else (0.5 if quick else 1.0),
                writes=args.writes or (120 if quick else 200), pause_ms=args.pause_ms,
                concurrency=args.concurrency)


def prepare_policies(args: argparse.Namespace, log_dir: Path, notes: list[str]) -> Path:
    """The policy directory the gateway loads. Default: the repo's ``policies/`` with response rules that would
    *terminate* a stream turned into ``flag`` (masking is what is measured; a terminated stream would hide
    everything after the first secret). ``--policies DIR`` uses a directory exactly as it is."""
    if args.policies:
        return Path(args.policies).resolve()
    out = log_dir / "policies"
    out.mkdir()
    changed = []
    for path in sorted((REPO / "policies").glob("*.y*ml")):
        data = yaml.safe_load(path.read_text()) or {}
        for rule in data.get("response_rules") or []:
            if rule.get("action") == "terminate":
                rule["action"] = "flag"
                changed.append(rule.get("name", "?"))
        (out / path.name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    if changed:
        notes.append(f"policies: repo policies/ with response rule(s) {', '.join(changed)} set to `flag` instead of "
                     "`terminate`, so streams carry on past the first secret (use --policies policies to keep them)")
    return out


# --- requests --------------------------------------------------------------------------------------------------------

@dataclass
class Job:
    seed: int
    doc: Doc
    strategy: str
    """A chunking strategy, or ``oneshot``."""


@dataclass
class Result:
    job: Job
    received: analysis.Received
    seconds: float
    ok: bool = True


async def fetch(session: aiohttp.ClientSession, url: str, headers: dict, job: Job, plan: Plan) -> Result:
    stream = job.strategy != "oneshot"
    body = {"model": model_name(job.seed, plan.planted_docs, plan.benign_docs, job.doc.id, job.strategy),
            "messages": [{"role": "user", "content": "Continue the document."}], "stream": stream}
    t0 = time.perf_counter()
    try:
        async with session.post(url + CHAT, json=body, headers=headers) as r:
            raw = await r.read()
            status = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        rec = analysis.Received(status=0, errors=[f"request failed: {exc!r}"])
        return Result(job, rec, time.perf_counter() - t0, ok=False)
    ctype = "stream" if stream and status == 200 else "oneshot"
    rec = analysis.parse_stream(raw, status) if ctype == "stream" else analysis.parse_oneshot(raw, status)
    if status != 200:
        rec.errors.append(f"HTTP {status}: {raw[:300]!r}")
    ok = status == 200 and (rec.done or not stream)
    return Result(job, rec, time.perf_counter() - t0, ok=ok)


async def run_jobs(url: str, headers: dict, jobs: list[Job], plan: Plan, progress: str) -> list[Result]:
    limit = asyncio.Semaphore(plan.concurrency)
    results: list[Result] = []
    timeout = aiohttp.ClientTimeout(total=300, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=plan.concurrency)) as s:
        async def one(job: Job) -> None:
            async with limit:
                results.append(await fetch(s, url, headers, job, plan))

        # Costly streams first, so the tail of the run is not one long 1-char stream.
        order = sorted(jobs, key=lambda j: (j.strategy != "1", -len(j.doc.text)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(j) for j in order))
        print(f"masking-eval: {progress}: {len(jobs)} requests in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
    return results


def jobs_for(corpus: Corpus, plan: Plan) -> list[Job]:
    jobs = []
    docs = corpus.docs()
    one_char = {d.id for i, d in enumerate(docs) if (i * 7919) % 1000 < plan.one_char_share * 1000}
    for doc in docs:
        jobs.append(Job(corpus.seed, doc, "oneshot"))
        for strategy in plan.strategies:
            if strategy != "1" or doc.id in one_char:
                jobs.append(Job(corpus.seed, doc, strategy))
    return jobs


# --- scoring ---------------------------------------------------------------------------------------------------------

@dataclass
class Tally:
    planted: Counter = field(default_factory=Counter)
    masked: Counter = field(default_factory=Counter)
    edge_planted: Counter = field(default_factory=Counter)
    edge_masked: Counter = field(default_factory=Counter)
    oneshot_planted: Counter = field(default_factory=Counter)
    oneshot_masked: Counter = field(default_factory=Counter)
    label_ok: Counter = field(default_factory=Counter)
    withheld: Counter = field(default_factory=Counter)
    """Values that never reached the client because the response was stopped (a `terminate` rule): no recall."""
    misses_by_variant: Counter = field(default_factory=Counter)
    leaks: list[dict] = field(default_factory=list)
    streams: int = 0
    equal: int = 0
    equal_by_strategy: Counter = field(default_factory=Counter)
    streams_by_strategy: Counter = field(default_factory=Counter)
    mismatches: list[dict] = field(default_factory=list)
    fp: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    fp_examples: dict[str, str] = field(default_factory=dict)
    benign_bytes: Counter = field(default_factory=Counter)
    failed: list[dict] = field(default_factory=list)
    cuts: Counter = field(default_factory=Counter)
    escapes: Counter = field(default_factory=Counter)
    redacted_streams: Counter = field(default_factory=Counter)
    """Streams per strategy in which the masker hit a hold cap and wrote [REDACTED]."""
    redacted_labels: int = 0
    equal_uncapped: int = 0
    uncapped: int = 0
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    miss_examples: list[dict] = field(default_factory=list)


def _first_difference(a: str, b: str) -> dict:
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return {"at": i, "stream": a[max(0, i - 40):i + 60], "oneshot": b[max(0, i - 40):i + 60],
            "stream_len": len(a), "oneshot_len": len(b)}


def score_results(results: list[Result], plan: Plan, tally: Tally) -> None:
    oneshot: dict[tuple[int, str], Result] = {(r.job.seed, r.job.doc.id): r for r in results
                                              if r.job.strategy == "oneshot"}
    expected_labels = analysis_labels()
    oneshot_leaks: set[tuple[int, str, int]] = set()
    for (seed, _), res in sorted(oneshot.items()):
        doc = res.job.doc
        if not res.ok:
            tally.failed.append({"seed": seed, "doc": doc.id, "strategy": "oneshot", "errors": res.received.errors})
        out = res.received.channels[doc.channel]
        if doc.planted:
            extra = "\n".join(v for k, v in res.received.channels.items() if k != doc.channel)
            for p, o in zip(doc.planted, analysis.score(doc, out, extra + "\n" + "\n".join(res.received.strings))):
                key = p.detector
                if res.received.errors and _vanished(o):
                    continue
                tally.oneshot_planted[key] += not p.edge
                tally.oneshot_masked[key] += o.masked and not p.edge
                if o.leak:
                    oneshot_leaks.add((seed, doc.id, p.start))
        else:
            fps = analysis.false_positives(doc, out)
            tally.benign_bytes["oneshot"] += len(doc.text.encode())
            for fp in fps:
                tally.fp["oneshot"][fp.category] += 1
                tally.fp_examples.setdefault(f"{fp.category}/{fp.label}", fp.text[:120])
    for res in results:
        job, doc = res.job, res.job.doc
        if job.strategy == "oneshot":
            continue
        stream_plan = wire.stream_plan(doc, job.strategy, plan.writes)
        tally.cuts.update({k: v for k, v in stream_plan.stats.items()})
        tally.escapes[stream_plan.escape] += 1
        if not res.ok:
            tally.failed.append({"seed": job.seed, "doc": doc.id, "strategy": job.strategy,
                                 "errors": res.received.errors[:3]})
        out = res.received.channels[doc.channel]
        ref = oneshot.get((job.seed, doc.id))
        ref_out = ref.received.channels[doc.channel] if ref else None
        tally.streams += 1
        tally.streams_by_strategy[job.strategy] += 1
        tally.seconds[job.strategy].append(res.seconds)
        redactions = sum(text.count(REDACTED_TOKEN) for text in res.received.channels.values())
        tally.redacted_labels += redactions
        tally.redacted_streams[job.strategy] += redactions > 0
        equal = ref_out is not None and out == ref_out and res.ok and ref.ok
        tally.uncapped += redactions == 0
        tally.equal_uncapped += equal and redactions == 0
        if equal:
            tally.equal += 1
            tally.equal_by_strategy[job.strategy] += 1
        elif len(tally.mismatches) < 20:
            tally.mismatches.append({"seed": job.seed, "doc": doc.id, "strategy": job.strategy,
                                     "hold_cap_hit": redactions > 0, **_first_difference(out, ref_out or "")})
        if doc.planted:
            extra = "\n".join(v for k, v in res.received.channels.items() if k != doc.channel)
            outcomes = analysis.score(doc, out, extra + "\n" + "\n".join(res.received.strings))
            for p, o in zip(doc.planted, outcomes):
                if res.received.errors and _vanished(o):
                    tally.withheld[p.detector] += 1
                elif p.edge:
                    tally.edge_planted[(p.detector, p.variant)] += 1
                    tally.edge_masked[(p.detector, p.variant)] += o.masked
                else:
                    tally.planted[p.detector] += 1
                    tally.masked[p.detector] += o.masked
                    tally.label_ok[p.detector] += o.masked and o.label == expected_labels.get(p.detector)
                    if not o.masked:
                        tally.misses_by_variant[(p.detector, p.variant)] += 1
                        if len(tally.miss_examples) < 30:
                            tally.miss_examples.append(_miss_example(job, p, out))
                if o.leak:
                    tally.leaks.append({
                        "seed": job.seed, "doc": doc.id, "strategy": job.strategy, "channel": doc.channel,
                        "detector": p.detector, "variant": p.variant, "edge": p.edge, "kind": o.leak,
                        "survived_chars": o.survived, "value_chars": len(p.value),
                        "also_in_oneshot": (job.seed, doc.id, p.start) in oneshot_leaks,
                        "context": doc.text[max(0, p.start - 40):p.start] + "⟦" + p.value[:80] + "⟧"})
        else:
            tally.benign_bytes[job.strategy] += len(doc.text.encode())
            for fp in analysis.false_positives(doc, out):
                tally.fp[job.strategy][fp.category] += 1
                tally.fp_examples.setdefault(f"{fp.category}/{fp.label}", fp.text[:120])


def _vanished(o: analysis.Outcome) -> bool:
    return o.survived == 0 and o.label is None and o.leak is None


def _miss_example(job: Job, p, out: str) -> dict:
    text = job.doc.text
    left = text[max(0, p.start - 24):p.start]
    at = out.find(left) if left else 0
    return {"seed": job.seed, "doc": job.doc.id, "strategy": job.strategy, "detector": p.detector,
            "variant": p.variant, "input": text[max(0, p.start - 24):p.end + 16],
            "output": out[at:at + len(left) + len(p.value) + 40] if at >= 0 else None}


def analysis_labels() -> dict[str, str]:
    try:
        from bench.masking_eval.catalog import labels

        return labels()
    except ImportError:
        return {}


# --- gateway ---------------------------------------------------------------------------------------------------------

async def start_processes(plan: Plan, policies: Path, log_dir: Path, children: list[Child], args):
    from gateway.auth.dev_issuer import DevIssuer

    issuer = DevIssuer(host="127.0.0.1", port=0, audience="reasoning-gateway")
    await issuer.start()
    py = sys.executable
    upstream = await Child("upstream", [py, "-m", "bench.masking_eval.upstream", "--port", "0", "--pause-ms",
                                        str(plan.pause_ms), "--writes", str(plan.writes)], log_dir,
                           cwd=str(REPO)).start()
    children.append(upstream)
    upstream_url = await upstream.wait_ready_line()
    port = free_port()
    config = {"server": {"host": "127.0.0.1", "port": port},
              "upstream": {"url": upstream_url, "read_timeout_s": 60},
              "auth": {"issuer": issuer.url, "audience": "reasoning-gateway"},
              "policies": {"path": str(policies), "reload_s": 0},
              "logging": {"level": "warning", "access_log": False}}
    if args.gateway_config:
        extra = yaml.safe_load(Path(args.gateway_config).read_text()) or {}
        for section, values in extra.items():
            config.setdefault(section, {}).update(values)
    cfg_path = log_dir / "gateway.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    env_cwd = str(REPO)
    gateway = Child("gateway", [py, "-m", "gateway.cli", "serve", "--config", str(cfg_path)], log_dir, cwd=env_cwd)
    await gateway.start()
    children.append(gateway)
    url = f"http://127.0.0.1:{port}"
    await gateway.wait_http_ok(url + "/readyz", timeout=30)
    token = issuer.mint("masking-eval", groups=("engineers",), ttl_s=6 * 3600)
    return issuer, url, {"Authorization": f"Bearer {token}"}


async def probe(url: str, headers: dict) -> dict:
    """Is masking on? A non-streaming and a streaming answer carrying an email address and a customer id."""
    out = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        for stream in (False, True):
            body = {"model": "probe", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            async with s.post(url + CHAT, json=body, headers=headers) as r:
                raw = await r.read()
                rec = analysis.parse_stream(raw, r.status) if stream else analysis.parse_oneshot(raw, r.status)
            text = rec.channels["content"]
            out["stream" if stream else "oneshot"] = {"status": r.status, "text": text,
                                                      "masked": "probe.user@example.org" not in text
                                                      and "[EMAIL" in text}
    out["active"] = all(v["masked"] for v in out.values())
    return out


HELD_RX = re.compile(r"^([a-z_:]*(?:hold|held)[a-z_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$", re.M)


async def held_back_metrics(url: str) -> dict[str, float]:
    """Gateway metrics about held-back text (names containing ``hold``/``held``), if it exposes any."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            async with s.get(url + "/metrics") as r:
                text = await r.text()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return {}
    return {m.group(1) + (m.group(2) or ""): float(m.group(3)) for m in HELD_RX.finditer(text)}


# --- report ----------------------------------------------------------------------------------------------------------

def build_report(tally: Tally, probe_result: dict, held: dict, plan: Plan) -> dict:
    recall = {}
    for det in sorted(set(tally.planted) | set(tally.oneshot_planted)):
        n, m = tally.planted[det], tally.masked[det]
        on, om = tally.oneshot_planted[det], tally.oneshot_masked[det]
        recall[det] = {"planted": n, "masked": m, "recall": m / n if n else None, "withheld": tally.withheld[det],
                       "label_as_own": tally.label_ok[det] / n if n else None,
                       "oneshot_planted": on, "oneshot_recall": om / on if on else None}
    edge = {f"{d}/{v}": {"planted": n, "masked": tally.edge_masked[(d, v)],
                         "recall": tally.edge_masked[(d, v)] / n if n else None,
                         "why": EDGE_VARIANTS.get((d, v), "")} for (d, v), n in sorted(tally.edge_planted.items())}
    fp = {}
    for mode, cats in tally.fp.items():
        total = sum(cats.values())
        nbytes = tally.benign_bytes[mode]
        fp[mode] = {"labels": total, "bytes": nbytes, "per_10kb": total / nbytes * 10240 if nbytes else None,
                    "by_category": dict(cats.most_common())}
    for mode, nbytes in tally.benign_bytes.items():
        fp.setdefault(mode, {"labels": 0, "bytes": nbytes, "per_10kb": 0.0, "by_category": {}})
    worst_fp = max((v["per_10kb"] or 0.0 for v in fp.values()), default=0.0)
    leaks = tally.leaks
    stream_only = [lk for lk in leaks if not lk["also_in_oneshot"]]
    eq_rate = tally.equal / tally.streams if tally.streams else None
    structured = {d: r for d, r in recall.items() if r["planted"]}
    low = {d: r["recall"] for d, r in structured.items() if r["recall"] is not None and r["recall"] < TARGETS["recall"]}
    checks = [
        {"name": "leaks (verbatim, or >= 50% of a value unchanged), all values", "value": len(leaks),
         "target": "== 0", "ok": len(leaks) == 0},
        {"name": "stream == one-shot", "value": eq_rate, "target": "100%", "ok": eq_rate == 1.0},
        {"name": f"recall >= {TARGETS['recall']:.1%} per detector (catalog scope)",
         "value": f"{len(structured) - len(low)}/{len(structured)} detectors", "target": "all",
         "ok": not low and bool(structured)},
        {"name": "false positives per 10 KB benign (worst mode)", "value": worst_fp, "target": "<= 1",
         "ok": worst_fp <= TARGETS["fp_per_10kb"]},
    ]
    return {
        "masking_active": probe_result.get("active"), "probe": probe_result,
        "checks": checks, "recall": recall, "edge_recall": edge,
        "misses_by_variant": {f"{d}/{v}": n for (d, v), n in tally.misses_by_variant.most_common()},
        "leaks": {"total": len(leaks), "stream_only": len(stream_only),
                  "also_in_oneshot": len(leaks) - len(stream_only),
                  "in_scope": sum(not lk["edge"] for lk in leaks), "edge": sum(lk["edge"] for lk in leaks),
                  "by_kind": dict(Counter(lk["kind"] for lk in leaks).most_common()),
                  "by_variant": dict(Counter(f"{lk['detector']}/{lk['variant']}" for lk in leaks).most_common()),
                  "by_detector": dict(Counter(lk["detector"] for lk in leaks).most_common()),
                  "by_strategy": dict(Counter(lk["strategy"] for lk in leaks).most_common()),
                  "examples": leaks[:15], "stream_only_examples": stream_only[:15]},
        "miss_examples": tally.miss_examples,
        "hold_caps": {"streams_with_redaction": dict(tally.redacted_streams), "redactions": tally.redacted_labels,
                      "equal_without_cap": tally.equal_uncapped, "streams_without_cap": tally.uncapped},
        "stream_seconds": {s: _quantiles(v) for s, v in sorted(tally.seconds.items())},
        "stream_equals_oneshot": {"equal": tally.equal, "streams": tally.streams, "rate": eq_rate,
                                  "by_strategy": {s: {"equal": tally.equal_by_strategy[s], "streams": n}
                                                  for s, n in tally.streams_by_strategy.items()},
                                  "first_mismatches": tally.mismatches[:10]},
        "false_positives": fp, "fp_examples": tally.fp_examples,
        "held_back": held or None,
        "wire": {"cuts": dict(tally.cuts), "escape_modes": dict(tally.escapes)},
        "failed_requests": tally.failed[:20], "failed_count": len(tally.failed),
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {}
    return {"p50": v[len(v) // 2], "p99": v[min(len(v) - 1, int(len(v) * 0.99))], "max": v[-1]}


def _pct(x) -> str:
    return "   n/a" if x is None else f"{x:6.1%}"


def render(report: dict, plan: Plan, corpus_stats: list[dict], notes: list[str]) -> str:
    lines = []
    planted = sum(c["planted_values"] for c in corpus_stats)
    lines.append(f"corpus: {len(plan.seeds)} seed(s), {sum(c['planted_docs'] for c in corpus_stats)} planted docs "
                 f"({planted} values, {sum(c['edge_values'] for c in corpus_stats)} edge), "
                 f"{sum(c['benign_docs'] for c in corpus_stats)} benign docs "
                 f"({sum(c['benign_bytes'] for c in corpus_stats) / 1024:.0f} KB); strategies "
                 f"{', '.join(plan.strategies)} (1-char on {plan.one_char_share:.0%} of docs); "
                 f"{plan.writes} writes/stream")
    if not report["masking_active"]:
        lines.append("")
        lines.append("!! MASKING IS NOT ACTIVE in this gateway: the probe came back unmasked "
                     f"({report['probe'].get('oneshot', {}).get('text', '')!r}). The figures below measure a "
                     "pass-through, not the masker.")
    lines.append("")
    withheld = any(r["withheld"] for r in report["recall"].values())
    lines.append(f"{'detector':26} {'planted':>7} {'recall':>7} {'own label':>9} {'one-shot':>8}"
                 + (f" {'withheld':>8}" if withheld else ""))
    for det, r in report["recall"].items():
        flag = "" if r["recall"] is None or r["recall"] >= TARGETS["recall"] else "  <"
        lines.append(f"{det:26} {r['planted']:7d} {_pct(r['recall']):>7} {_pct(r['label_as_own']):>9} "
                     f"{_pct(r['oneshot_recall']):>8}" + (f" {r['withheld']:8d}" if withheld else "") + flag)
    if withheld:
        lines.append("(withheld: values after the point where a `terminate` rule stopped the stream; not in recall)")
    if report["edge_recall"]:
        lines.append("edge structures (outside the catalog's scope; leaks still count):")
        for name, r in report["edge_recall"].items():
            lines.append(f"  {name:40} {r['planted']:5d} {_pct(r['recall'])}")
    if report["misses_by_variant"]:
        top = list(report["misses_by_variant"].items())[:8]
        lines.append("misses by variant: " + ", ".join(f"{k} {v}" for k, v in top))
    lk = report["leaks"]
    lines.append("")
    lines.append(f"leaks: {lk['total']} — {lk['in_scope']} of values in the catalog's scope, {lk['edge']} of edge "
                 f"structures; {lk['stream_only']} only when streamed, {lk['also_in_oneshot']} also in the one-shot "
                 "reference")
    if lk["total"]:
        lines.append(f"  by detector {lk['by_detector']}; by kind {lk['by_kind']}")
    eq = report["stream_equals_oneshot"]
    lines.append(f"stream == one-shot: {eq['equal']}/{eq['streams']} " + ", ".join(
        f"[{s}] {v['equal']}/{v['streams']}" for s, v in sorted(eq["by_strategy"].items())))
    caps = report["hold_caps"]
    capped = sum(caps["streams_with_redaction"].values())
    lines.append(f"hold caps: {capped} stream(s) with [REDACTED] ({caps['redactions']} in all)"
                 + (f"; without a cap hit, stream == one-shot {caps['equal_without_cap']}/{caps['streams_without_cap']}"
                    if capped else ""))
    lines.append("stream seconds (p50/p99/max): " + ", ".join(
        f"[{s}] {q['p50']:.2f}/{q['p99']:.2f}/{q['max']:.2f}" for s, q in report["stream_seconds"].items() if q))
    fp = report["false_positives"]
    lines.append("false positives / 10 KB: " + ", ".join(
        f"[{m}] {v['per_10kb']:.2f}" for m, v in sorted(fp.items()) if v["per_10kb"] is not None))
    cats = Counter()
    for v in fp.values():
        cats.update(v["by_category"])
    if cats:
        lines.append("  by hard-negative category (all modes): " + ", ".join(f"{k} {n}" for k, n in cats.most_common()))
    held = report["held_back"]
    lines.append("held back: " + (", ".join(f"{k} = {v:g}" for k, v in held.items()) if held
                                  else "not exposed by the gateway's /metrics (skipped)"))
    cuts = report["wire"]["cuts"]
    lines.append(f"wire: {cuts.get('writes', 0)} writes, cuts inside UTF-8 {cuts.get('utf8', 0)}, inside JSON escapes "
                 f"{cuts.get('escape', 0)}, between surrogate halves {cuts.get('surrogate', 0)}, in `data: ` "
                 f"{cuts.get('prefix', 0)}, between event newlines {cuts.get('blank_line', 0)}, random "
                 f"{cuts.get('random', 0)}; escaping {report['wire']['escape_modes']}")
    if report["failed_count"]:
        lines.append(f"failed/incomplete requests: {report['failed_count']} (first: {report['failed_requests'][0]})")
    lines.append("")
    for c in report["checks"]:
        value = c["value"]
        shown = f"{value:.2%}" if isinstance(value, float) and c["name"].startswith("stream") else (
            f"{value:.2f}" if isinstance(value, float) else str(value))
        lines.append(f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {shown} (target {c['target']})")
    for note in notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict:
    plan = make_plan(args)
    log_dir = Path(tempfile.mkdtemp(prefix="masking-eval-"))
    notes: list[str] = []
    policies = prepare_policies(args, log_dir, notes)
    children: list[Child] = []
    issuer = None
    try:
        issuer, url, headers = await start_processes(plan, policies, log_dir, children, args)
        probe_result = await probe(url, headers)
        print(f"masking-eval: gateway {url}, policies {policies}, masking active: {probe_result['active']}",
              file=sys.stderr)
        tally = Tally()
        corpus_stats = []
        for seed in plan.seeds:
            corpus = generate(seed, planted_docs=plan.planted_docs, benign_docs=plan.benign_docs)
            corpus_stats.append(summary(corpus))
            results = await run_jobs(url, headers, jobs_for(corpus, plan), plan, f"seed {seed}")
            score_results(results, plan, tally)
        held = await held_back_metrics(url)
        report = build_report(tally, probe_result, held, plan)
        print(render(report, plan, corpus_stats, notes))
        return {"plan": asdict(plan), "corpus": corpus_stats, "report": report, "notes": notes,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "aiohttp": aiohttp.__version__}, "logs": str(log_dir)}
    finally:
        for child in reversed(children):
            await child.stop()
        if issuer is not None:
            await issuer.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.masking_eval.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 32+12 documents: well under a minute")
    p.add_argument("--seeds", type=int, help="seeds 1..N (default 5, quick 1)")
    p.add_argument("--planted-docs", type=int, help="documents with planted values per seed (default 48, quick 32)")
    p.add_argument("--benign-docs", type=int, help="benign documents per seed (default 16, quick 12)")
    p.add_argument("--one-char-share", type=float, help="share of documents also streamed 1 char per event "
                                                        "(default 1.0, quick 0.5)")
    p.add_argument("--writes", type=int, help="socket writes per stream (default 200, quick 120)")
    p.add_argument("--pause-ms", type=float, default=1.0, help="upstream pause between writes (default 1)")
    p.add_argument("--concurrency", type=int, default=4,
                   help="requests in flight (default 4; more saturates a small machine, and streams then hit the "
                        "masker's max_hold_s cap)")
    p.add_argument("--policies", help="policy directory to load as is (default: repo policies/, terminate->flag)")
    p.add_argument("--gateway-config", help="YAML merged into the generated gateway config")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = asyncio.run(run(args))
    results["wall_s"] = time.perf_counter() - t0
    print(f"\nmasking-eval: finished in {results['wall_s']:.1f} s (logs in {results['logs']})")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    return 0 if all(c["ok"] for c in results["report"]["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
