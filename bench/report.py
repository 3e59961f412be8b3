"""Turn the per-round measurements into medians, the target checks, and the printed table."""
from __future__ import annotations

import statistics
from typing import Any

# (label, phase, key, scale, format): one table row per metric.
ROWS = [
    ("non-stream req/s", "nonstream", "rps", 1, "{:.0f}"),
    ("non-stream p50 ms", "nonstream", "latency_p50_ms", 1, "{:.2f}"),
    ("non-stream p99 ms", "nonstream", "latency_p99_ms", 1, "{:.2f}"),
    ("CPU µs / request", "nonstream", "cpu_us_per_request", 1, "{:.0f}"),
    ("stream chunks/s", "stream", "events_per_s", 1, "{:.0f}"),
    ("stream MB/s", "stream", "bytes_per_s", 1e-6, "{:.1f}"),
    ("stream TTFC p50 ms", "stream", "ttfc_p50_ms", 1, "{:.2f}"),
    ("stream TTFC p99 ms", "stream", "ttfc_p99_ms", 1, "{:.2f}"),
    ("CPU µs / chunk", "stream", "cpu_us_per_chunk", 1, "{:.1f}"),
    ("light-rate p50 ms", "light", "latency_p50_ms", 1, "{:.3f}"),
    ("light-rate p99 ms", "light", "latency_p99_ms", 1, "{:.3f}"),
    ("light-rate TTFC p50 ms", "light_stream", "ttfc_p50_ms", 1, "{:.3f}"),
    ("light-rate TTFC p99 ms", "light_stream", "ttfc_p99_ms", 1, "{:.3f}"),
    ("idle stream KB (RSS Δ/N)", "idle", "bytes_per_stream", 1 / 1024, "{:.1f}"),
    ("start-up s (spawn→ready)", "startup", "seconds", 1, "{:.2f}"),
]


def medians(rounds: list[dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict[str, float]]]:
    """rounds[i][target][phase] -> metrics  ==>  summary[target][phase][metric] = median over rounds."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for rnd in rounds:
        for target, phases in rnd.items():
            for phase, metrics in phases.items():
                slot = summary.setdefault(target, {}).setdefault(phase, {})
                for key, value in metrics.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        slot.setdefault(key, []).append(value)  # type: ignore[arg-type]
    return {t: {p: {k: statistics.median(v) for k, v in m.items()} for p, m in ph.items()}  # type: ignore[misc]
            for t, ph in summary.items()}


def _get(summary: dict, target: str, phase: str, key: str) -> float | None:
    return summary.get(target, {}).get(phase, {}).get(key)


def _diff(summary: dict, a: str, b: str, phase: str, key: str) -> float | None:
    x, y = _get(summary, a, phase, key), _get(summary, b, phase, key)
    return x - y if x is not None and y is not None else None


def derived(summary: dict) -> dict[str, float | None]:
    """What masking costs end to end: the `masked` target's CPU minus the auth-only gateway's (None: not measured)."""
    return {"masking_cpu_us_per_chunk": _diff(summary, "masked", "gateway", "stream", "cpu_us_per_chunk"),
            "masking_cpu_us_per_request": _diff(summary, "masked", "gateway", "nonstream", "cpu_us_per_request")}


def checks(summary: dict) -> list[dict[str, Any]]:
    """The gateway's performance targets, each with its value, limit and verdict (None: not measured).

    F1: the auth-only `gateway` against the bare proxy. F2: the `masked` gateway (policy + masking of every
    channel) against the auth-only gateway for streams and against the bare proxy for plain requests."""
    def ratio(phase: str, key: str, target: str = "gateway", base: str = "bare") -> float | None:
        g, b = _get(summary, target, phase, key), _get(summary, base, phase, key)
        return g / b if g is not None and b else None

    def kib(value: float | None) -> float | None:
        return value / 1024 if value is not None else None

    rows = [
        ("gateway/bare throughput, non-stream", ratio("nonstream", "rps"), ">=", 0.80, "{:.0%}"),
        ("gateway/bare chunks/s, stream", ratio("stream", "events_per_s"), ">=", 0.80, "{:.0%}"),
        ("added p50 over bare at light rate (ms)", _diff(summary, "gateway", "bare", "light", "latency_p50_ms"), "<=", 0.5, "{:.3f}"),
        ("gateway memory per idle open stream (KB)", kib(_get(summary, "gateway", "idle", "bytes_per_stream")),
         "<=", 64, "{:.1f}"),
        ("gateway start-up, spawn to /readyz 200 (s)", _get(summary, "gateway", "startup", "seconds"), "<=", 1.0,
         "{:.2f}"),
        ("masked/gateway chunks/s, stream", ratio("stream", "events_per_s", "masked", "gateway"), ">=", 0.50,
         "{:.0%}"),
        ("masked/bare throughput, non-stream", ratio("nonstream", "rps", "masked", "bare"), ">=", 0.60, "{:.0%}"),
    ]
    out = []
    for name, value, op, limit, fmt in rows:
        ok = None if value is None else (value >= limit if op == ">=" else value <= limit)
        out.append({"check": name, "value": value, "op": op, "limit": limit, "pass": ok,
                    "shown": "n/a" if value is None else fmt.format(value),
                    "limit_shown": fmt.format(limit)})
    return out


def render(summary: dict, targets: list[str], check_rows: list[dict], notes: list[str]) -> str:
    width = 12
    lines = ["", f"{'':28}" + "".join(f"{t:>{width}}" for t in targets)]
    for label, phase, key, scale, fmt in ROWS:
        cells = []
        for t in targets:
            v = _get(summary, t, phase, key)
            cells.append(f"{fmt.format(v * scale) if v is not None else '-':>{width}}")
        lines.append(f"{label:28}" + "".join(cells))
    b, d = _get(summary, "bare", "nonstream", "rps"), _get(summary, "direct", "nonstream", "rps")
    if b and d:
        lines.append(f"\nbare/direct throughput {b / d:.0%}: what any Python proxy hop costs on this machine")
    for phase, key, what in (("nonstream", "cpu_us_per_request", "request"), ("stream", "cpu_us_per_chunk", "chunk")):
        g, b = _get(summary, "gateway", phase, key), _get(summary, "bare", phase, key)
        if g and b:
            lines.append(f"CPU per {what}, bare/gateway {b / g:.0%}: the throughput ratio to expect once CPU-bound")
    cost = derived(summary)
    for key, what, fmt in (("masking_cpu_us_per_request", "request", "{:+.0f}"),
                           ("masking_cpu_us_per_chunk", "chunk", "{:+.1f}")):
        if cost[key] is not None:
            lines.append(f"masking cost per {what}, masked − gateway CPU: {fmt.format(cost[key])} µs "
                         "(policy + masking of every channel, end to end)")
    lines.append("")
    for c in check_rows:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[c["pass"]]
        lines.append(f"{c['check']:44} {c['shown']:>9}  target {c['op']} {c['limit_shown']:<6} {verdict}")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
