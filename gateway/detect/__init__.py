"""Detectors: the built-in catalog (``pii.*``, ``secrets.*``), policy-defined ones, and selection by pattern.

``select(["pii.*", "secrets.*", "customer_id"], extra=[...])`` resolves a policy's ``masking.response`` list
against the catalog plus the policy's own detectors (shell-style wildcards on names).
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.detect.catalog import BUILTIN, BY_NAME
from gateway.detect.model import (
    CONTEXT_CHARS,
    Detector,
    DetectorError,
    keyword_detector,
    regex_detector,
    rewrite_pattern,
)

__all__ = [
    "BUILTIN", "BY_NAME", "CONTEXT_CHARS", "Detector", "DetectorError", "from_policy", "keyword_detector",
    "regex_detector", "rewrite_pattern", "select",
]


def from_policy(entry: Mapping[str, Any]) -> Detector:
    """A detector from one policy ``detectors:`` entry: ``{name, regex, label}`` or ``{name, keywords, label}``
    (optional ``case_insensitive``, default true). Raises :class:`DetectorError` naming the problem."""
    name, label = entry.get("name"), entry.get("label")
    if not isinstance(name, str) or not name or not isinstance(label, str) or not label:
        raise DetectorError("a detector needs a string 'name' and 'label'")
    if name.startswith(("pii.", "secrets.")):
        raise DetectorError(f"detector {name!r}: the pii.* and secrets.* names are reserved for the catalog")
    has_rx, has_kw = "regex" in entry, "keywords" in entry
    if has_rx == has_kw:
        raise DetectorError(f"detector {name!r}: give exactly one of 'regex' or 'keywords'")
    if has_rx:
        if not isinstance(entry["regex"], str):
            raise DetectorError(f"detector {name!r}: 'regex' must be a string")
        return regex_detector(name, entry["regex"], label)
    kws = entry["keywords"]
    if not isinstance(kws, list) or not all(isinstance(k, str) for k in kws):
        raise DetectorError(f"detector {name!r}: 'keywords' must be a list of strings")
    return keyword_detector(name, kws, label, case_insensitive=bool(entry.get("case_insensitive", True)))


def select(patterns: Iterable[str], extra: Iterable[Detector] = ()) -> list[Detector]:
    """Detectors whose name matches any pattern, in catalog order then ``extra`` order.

    A pattern that matches nothing raises :class:`DetectorError` (a typo must not silently mask less).
    """
    pool = list(BUILTIN) + [d for d in extra if d.name not in BY_NAME]
    pats = list(patterns)
    chosen = []
    for pat in pats:
        if not any(fnmatch.fnmatchcase(d.name, pat) for d in pool):
            raise DetectorError(f"no detector matches {pat!r}")
    for d in pool:
        if any(fnmatch.fnmatchcase(d.name, pat) for pat in pats):
            chosen.append(d)
    return chosen
