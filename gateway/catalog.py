"""Wiring between the policy layer, the detector catalog and the masking engine.

The policy package sees detectors only through :class:`gateway.policy.registry.DetectorRegistry`; the masking
filter sees the engine only through :class:`gateway.filters.masking.MaskerFactory`. Both are implemented here
over ``gateway.detect`` and ``gateway.masking``. Scanners are built once per policy version and detector set,
never per request.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache

from gateway.detect import BY_NAME, Detector, keyword_detector, regex_detector
from gateway.masking import Masker, StreamMasker, make_style
from gateway.masking.scanner import Scanner
from gateway.policy.compiled import Policy
from gateway.policy.registry import CustomDetector


def to_detector(custom: CustomDetector) -> Detector:
    if custom.regex is not None:
        return regex_detector(custom.name, custom.regex, custom.label)
    return keyword_detector(custom.name, custom.keywords, custom.label, case_insensitive=custom.case_insensitive)


def detectors_for(names: Collection[str], custom: Sequence[CustomDetector]) -> list[Detector]:
    """The named detectors, built-in first (catalog order), then the policy's own (file order)."""
    chosen = [d for name, d in BY_NAME.items() if name in names]
    return chosen + [to_detector(c) for c in custom if c.name in names and c.name not in BY_NAME]


def count_matches(scanner: Scanner, text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for match in scanner.scan(text):
        for name in match.detectors:
            counts[name] = counts.get(name, 0) + 1
    return counts


class CatalogRegistry:
    """The policy layer's view of the catalog (``DetectorRegistry``)."""

    def builtin_names(self) -> Collection[str]:
        return tuple(BY_NAME)

    def scanner(self, names: Collection[str], custom: Sequence[CustomDetector]):
        detectors = detectors_for(names, custom)
        if not detectors:
            return lambda text: {}
        scanner = Scanner(detectors)
        return lambda text: count_matches(scanner, text)


class PolicyMaskers:
    """Maskers per (policy version, detector names), with the style the policy asks for."""

    def __init__(self, *, hmac_key: bytes | None, max_hold_chars: int, max_hold_s: float) -> None:
        self.hmac_key = hmac_key
        self.max_hold_chars = max_hold_chars
        self.max_hold_s = max_hold_s
        self._masker = lru_cache(maxsize=32)(self._build)

    def _build(self, policy: Policy, names: frozenset[str]) -> Masker:
        detectors = detectors_for(names, policy.detectors)
        style = make_style(policy.masking.style, detectors, key=self.hmac_key)
        return Masker(Scanner(detectors), style)

    def masker(self, policy: Policy, names: frozenset[str]) -> Masker:
        return self._masker(policy, names)

    def check(self, policy: Policy) -> None:
        """Build what the policy needs now, so a style without its key fails at load, not on a request."""
        self.masker(policy, policy.masking.response)
        if policy.masking.request:
            self.masker(policy, policy.masking.request)


class ExchangeMaskers:
    """``MaskerFactory`` for the masking filter: the masker of the policy version the request was decided by."""

    def __init__(self, maskers: PolicyMaskers, policy: Policy) -> None:
        self._maskers = maskers
        self._policy = policy

    def stream(self, names: frozenset[str]) -> StreamMasker:
        m = self._maskers
        return m.masker(self._policy, names).stream(max_hold_chars=m.max_hold_chars, max_hold_s=m.max_hold_s)

    def mask(self, text: str, names: frozenset[str]) -> tuple[str, Mapping[str, int]]:
        return self._maskers.masker(self._policy, names).mask_text(text)

    def counts(self, masker: StreamMasker) -> Mapping[str, int]:
        return masker.counts
