"""A small detector registry and masker implementing the policy layer's protocols (no gateway.detect needed)."""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from gateway.policy import CustomDetector, Policy

BUILTINS = {
    "pii.email": (re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"), "EMAIL"),
    "pii.phone": (re.compile(r"\+?\d[\d -]{8,}\d"), "PHONE"),
    "secrets.aws_access_key": (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "AWS_KEY"),
    "secrets.github_token": (re.compile(r"\bghp_[A-Za-z0-9]{36}\b"), "GITHUB_TOKEN"),
}


def _compile(d: CustomDetector) -> re.Pattern[str]:
    if d.regex is not None:
        return re.compile(d.regex)
    return re.compile("|".join(re.escape(k) for k in d.keywords), re.IGNORECASE if d.case_insensitive else 0)


class FakeRegistry:
    def __init__(self) -> None:
        self.scanners_built = 0
        self.scanned: list[str] = []

    def builtin_names(self) -> Collection[str]:
        return BUILTINS.keys()

    def patterns(self, custom: Sequence[CustomDetector]) -> dict[str, tuple[re.Pattern[str], str]]:
        return dict(BUILTINS) | {d.name: (_compile(d), d.label) for d in custom}

    def scanner(self, names: Collection[str], custom: Sequence[CustomDetector]):
        self.scanners_built += 1
        pats = {n: p for n, (p, _) in self.patterns(custom).items() if n in names}

        def scan(text: str) -> dict[str, int]:
            self.scanned.append(text)
            return {n: len(p.findall(text)) for n, p in pats.items() if p.search(text)}

        return scan


def fake_masker(registry: FakeRegistry):
    def mask(policy: Policy, text: str, side: str) -> str:
        names = policy.masking.response if side == "response" else policy.masking.request
        for name, (pattern, label) in registry.patterns(policy.detectors).items():
            if name in names:
                text = pattern.sub(f"[{label}]", text)
        return text

    return mask
