"""Load policy files, merge them in file-name order, check cross-file references and compile.

Merge rules (documented in policies/README.md):
- files are ``*.yaml`` / ``*.yml`` directly in the directory, sorted by file name (a single file path also works);
- ``detectors``, ``rules`` and ``response_rules`` are concatenated in file order;
- ``masking.response`` / ``masking.request`` are unioned;
- ``masking.style`` and ``defaults.reasoning`` may be set in several files only with the same value: a different
  value is an error naming both places (no silent "last file wins" for a security setting);
- rule and response rule names are unique across all files; detector names are unique and may not use the
  built-in prefixes; every selector must name a known detector or be a glob matching at least one.
Each file is validated on its own first; cross-file checks run only when every file is valid.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from gateway.policy import compiled as c
from gateway.policy.model import PolicyFile, RuleDef, hint
from gateway.policy.registry import CustomDetector, DetectorRegistry, expand_selector, glob_regex, is_glob
from gateway.policy.source import PolicyError, Problem, Source, parse_yaml, validate

PATTERNS = ("*.yaml", "*.yml")


def discover(path: str | Path) -> list[Path]:
    """The policy files at ``path``: the file itself, or the directory's YAML files sorted by name."""
    p = Path(path)
    if p.is_dir():
        files = sorted({f for pat in PATTERNS for f in p.glob(pat) if f.is_file()}, key=lambda f: f.name)
        if not files:
            raise PolicyError([Problem(str(p), 0, "no policy files (*.yaml) in this directory")])
        return files
    if p.is_file():
        return [p]
    raise PolicyError([Problem(str(p), 0, "no such file or directory")])


def read_sources(path: str | Path) -> list[tuple[str, str]]:
    """(file name, text) for each policy file at ``path``, in merge order."""
    out = []
    for f in discover(path):
        try:
            out.append((str(f), f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError([Problem(str(f), 0, f"cannot read: {exc}")]) from None
    return out


def load_policy(path: str | Path, registry: DetectorRegistry) -> c.Policy:
    return compile_sources(read_sources(path), registry)


def version_of(sources: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, text in sources:
        h.update(Path(name).name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:16]


def compile_sources(sources: Sequence[tuple[str, str]], registry: DetectorRegistry) -> c.Policy:
    """Validate, merge and compile; raises PolicyError listing every problem found (file:line each)."""
    parsed: list[tuple[Source, PolicyFile]] = []
    problems: list[Problem] = []
    for name, text in sources:
        try:
            src = parse_yaml(name, text)
            parsed.append((src, validate(PolicyFile, src, hint)))
        except PolicyError as exc:
            problems += exc.problems
    if problems:
        raise PolicyError(problems)
    return _Merger(parsed, registry).build(version_of(sources))


class _Merger:
    def __init__(self, parsed: list[tuple[Source, PolicyFile]], registry: DetectorRegistry) -> None:
        self.parsed = parsed
        self.registry = registry
        self.problems: list[Problem] = []

    def build(self, version: str) -> c.Policy:
        custom = self._detectors()
        self.known = set(self.registry.builtin_names()) | {d.name for d in custom}
        self._unique_names()
        rules = [self._rule(src, i, r) for src, pf in self.parsed for i, r in enumerate(pf.rules)]
        responses = [self._response_rule(src, i, r) for src, pf in self.parsed for i, r in enumerate(pf.response_rules)]
        masking = c.MaskingSpec(
            response=frozenset(self._expand_all("response")),
            request=frozenset(self._expand_all("request")),
            style=self._single(("masking", "style")) or "label",
        )
        default_reasoning = self._single(("defaults", "reasoning")) or "mask"
        if self.problems:
            order = {src.file: k for k, (src, _) in enumerate(self.parsed)}
            raise PolicyError(sorted(self.problems, key=lambda p: (order.get(p.file, 0), p.line)))
        request_detectors = frozenset(n for r in rules for n in (r.request_detects or ()))
        return c.Policy(
            rules=tuple(rules),
            response_rules=tuple(responses),
            detectors=tuple(custom),
            masking=masking,
            default_reasoning=default_reasoning,
            request_detectors=request_detectors,
            response_detectors=frozenset(n for r in responses for n in r.detects),
            scan=self.registry.scanner(request_detectors, tuple(custom)),
            files=tuple(src.file for src, _ in self.parsed),
            version=version,
        )

    def _detectors(self) -> list[CustomDetector]:
        out: list[CustomDetector] = []
        seen: dict[str, str] = {}
        builtin = set(self.registry.builtin_names())
        for src, pf in self.parsed:
            for i, d in enumerate(pf.detectors):
                where = f"{src.file}:{src.line(('detectors', i))}"
                if d.name in seen or d.name in builtin:
                    first = seen.get(d.name, "the built-in catalog")
                    msg = f"detector {d.name!r} already defined at {first}"
                    self.problems.append(src.problem(("detectors", i, "name"), msg))
                    continue
                seen[d.name] = where
                ci = True if d.case_insensitive is None else d.case_insensitive
                out.append(CustomDetector(d.name, d.label, d.regex, tuple(d.keywords or ()), ci))
        return out

    def _unique_names(self) -> None:
        seen: dict[str, str] = {}
        for src, pf in self.parsed:
            for kind, items in (("rules", pf.rules), ("response_rules", pf.response_rules)):
                for i, r in enumerate(items):
                    where = f"{src.file}:{src.line((kind, i))}"
                    if r.name in seen:
                        msg = f"duplicate rule name {r.name!r} (first defined at {seen[r.name]})"
                        self.problems.append(src.problem((kind, i, "name"), msg))
                    else:
                        seen[r.name] = where

    def _expand(self, src: Source, loc: tuple, selectors: Iterable[str]) -> list[str]:
        names: list[str] = []
        for j, sel in enumerate(selectors):
            found = expand_selector(sel, self.known)
            if not found:
                what = "glob matches no detector" if is_glob(sel) else "unknown detector"
                close = difflib.get_close_matches(sel, self.known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                known = ", ".join(sorted(self.known)) or "(none)"
                self.problems.append(src.problem(loc + (j,), f"{what} {sel!r} ({hint}known detectors: {known})"))
            names += [n for n in found if n not in names]
        return names

    def _expand_all(self, side: str) -> list[str]:
        names: list[str] = []
        for src, pf in self.parsed:
            names += self._expand(src, ("masking", side), getattr(pf.masking, side))
        return names

    def _single(self, loc: tuple[str, str]) -> str | None:
        """A setting several files may repeat only with the same value."""
        value, where = None, ""
        for src, pf in self.parsed:
            v = getattr(getattr(pf, loc[0]), loc[1])
            if v is None:
                continue
            here = f"{src.file}:{src.line(loc)}"
            if value is not None and v != value:
                self.problems.append(src.problem(loc, f"{'.'.join(loc)} {v!r} conflicts with {value!r} set at {where}"))
            elif value is None:
                value, where = v, here
        return value

    def _rule(self, src: Source, i: int, r: RuleDef) -> c.Rule:
        w = r.when
        fs = lambda v: frozenset(v) if v is not None else None  # noqa: E731
        detects = None
        if w.request_detects is not None:
            detects = frozenset(self._expand(src, ("rules", i, "when", "request_detects"), w.request_detects))
        keywords = None
        if w.request_keywords is not None:
            keywords = re.compile("|".join(re.escape(k) for k in w.request_keywords), re.IGNORECASE)
        approval = None
        if r.approval is not None:
            approval = c.ApprovalSpec(tuple(r.approval.approver_groups), r.approval.min_approvals)
        return c.Rule(
            name=r.name, action=r.action, reasoning=r.reasoning, approval=approval, message=r.message,
            source=f"{src.file}:{src.line(('rules', i))}",
            groups=fs(w.groups), not_groups=fs(w.not_groups), subjects=fs(w.subjects), client_ids=fs(w.client_ids),
            routes=glob_regex(w.routes) if w.routes else None, models=glob_regex(w.models) if w.models else None,
            request_detects=detects, request_regex=re.compile(w.request_regex) if w.request_regex else None,
            request_keywords=keywords, tools_present=w.tools_present, max_tokens_over=w.max_tokens_over,
        )

    def _response_rule(self, src: Source, i: int, r) -> c.ResponseRule:
        w = r.when
        detects = self._expand(src, ("response_rules", i, "when", "detects"), w.detects or [])
        return c.ResponseRule(
            name=r.name, action=r.action, message=r.message, channels=frozenset(w.channels),
            detects=frozenset(detects), regex=re.compile(w.regex) if w.regex else None,
            groups=frozenset(w.groups) if w.groups is not None else None,
            not_groups=frozenset(w.not_groups) if w.not_groups is not None else None,
            source=f"{src.file}:{src.line(('response_rules', i))}",
        )
