"""`gateway policy check PATH` and `gateway policy test CASES --policies PATH`, as plain functions.

The lead wires them into ``gateway/cli.py`` with the real detector registry and masker; each returns the exit
code (0 ok, 1 any problem) and prints to the given streams.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from gateway.policy.cases import CaseFile, Masker, run_case
from gateway.policy.loader import load_policy
from gateway.policy.registry import DetectorRegistry
from gateway.policy.source import PolicyError, parse_yaml, validate


def check(path: str | Path, registry: DetectorRegistry, *, out: TextIO | None = None,
          err: TextIO | None = None) -> int:
    """Validate the policy at ``path``: `OK: N files, M rules, K detectors`, or one `file:line: problem` each."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        policy = load_policy(path, registry)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        print(f"{len(exc.problems)} problem(s) found", file=err)
        return 1
    print(f"OK: {len(policy.files)} files, {len(policy.rules)} rules, {len(policy.detectors)} detectors", file=out)
    return 0


def test(cases_path: str | Path, policy_path: str | Path, registry: DetectorRegistry, *,
         masker: Masker | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the YAML test cases in ``cases_path`` against the policy at ``policy_path``; 1 on any failure."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        policy = load_policy(policy_path, registry)
        text = Path(cases_path).read_text(encoding="utf-8")
        cases = validate(CaseFile, parse_yaml(str(cases_path), text)).root
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    except OSError as exc:
        print(f"{cases_path}: cannot read: {exc.strerror}", file=err)
        return 1
    failed = skipped = 0
    for case in cases:
        diffs, skip = run_case(policy, case, masker)
        skipped += skip
        note = " (masked: skipped, no masker wired)" if skip else ""
        if diffs:
            failed += 1
            print(f"FAIL {case.name}: {'; '.join(diffs)}{note}", file=out)
        else:
            print(f"PASS {case.name}{note}", file=out)
    summary = f"{len(cases) - failed}/{len(cases)} passed"
    if skipped:
        summary += f", {skipped} masked check(s) skipped"
    print(summary, file=out)
    return 1 if failed or not cases else 0


test.__test__ = False  # type: ignore[attr-defined]  # a CLI command, not a pytest test (when imported by tests)
