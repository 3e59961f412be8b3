"""The gateway's detector catalog, applied offline to the corpus (for the tests and for ``run --catalog-check``).

A planted value counts as *found by its detector* when the detector's regex (``gateway.detect.catalog``, or the
repo policy's ``customer_id`` regex) has a match whose masked span (the value group when the detector has one)
covers the planted value and whose validator accepts it. Matches are searched at every start position
(``overlapped=True``), so this is the most lenient reading of "the detector can find it": anything it misses
here, a streaming scanner misses too.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def detectors() -> dict:
    """name -> ``gateway.detect.model.Detector``: the built-ins plus the repo policy's regex detectors."""
    from gateway.detect.catalog import BUILTIN
    from gateway.detect.model import regex_detector

    out = {d.name: d for d in BUILTIN}
    for path in sorted((REPO / "policies").glob("*.yaml")):
        for spec in (yaml.safe_load(path.read_text()) or {}).get("detectors", []) or []:
            if "regex" in spec:
                out[spec["name"]] = regex_detector(spec["name"], spec["regex"], spec["label"])
    return out


def labels() -> dict[str, str]:
    """detector name -> label (``pii.email`` -> ``EMAIL``)."""
    return {name: d.label for name, d in detectors().items()}


def find(name: str, text: str) -> list[tuple[int, int]]:
    """Spans (start, end) that detector ``name`` would mask in ``text``."""
    det = detectors()[name]
    spans = []
    for m in det.compiled.finditer(text, overlapped=True):
        start, end = m.span(det.value_group) if det.value_group is not None else m.span()
        if start < 0 or end <= start:
            continue
        if det.validator is None or det.validator(text[start:end]):
            spans.append((start, end))
    return spans


def covers(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def findings(text: str, names=None) -> list[tuple[str, int, int]]:
    """Every (detector, start, end) any of ``names`` (default: all) finds in ``text``."""
    out = []
    for name in names or detectors():
        out += [(name, s, e) for s, e in find(name, text)]
    return out
