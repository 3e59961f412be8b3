"""The policy engine's only view of the detector catalog: a narrow protocol plus selector expansion.

The catalog (``gateway.detect``) owns the actual detection code. The policy layer needs three things from it:
the names of the built-in detectors (``pii.*``, ``secrets.*``) so selectors can be checked at load time, a way
to turn the policy's custom detector definitions into detectors, and one scanner per policy version that counts
findings per detector name in a text. Everything goes through :class:`DetectorRegistry`; the lead wires an
adapter over the real catalog, tests use a small fake.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

BUILTIN_PREFIXES = ("pii.", "secrets.")
"""Namespaces reserved for the built-in catalog; custom detector names may not start with them."""

Scanner = Callable[[str], Mapping[str, int]]
"""Scans one text and returns ``{detector name: number of findings}`` (names with zero findings may be absent)."""


@dataclass(frozen=True, slots=True)
class CustomDetector:
    """A detector defined in a policy file (exactly one of ``regex`` / ``keywords`` is set)."""

    name: str
    """Unique name, used in selectors (`request_detects`, `masking.response`, ...)."""
    label: str
    """Replacement label used by the masker, e.g. `CUSTOMER_ID` -> `[CUSTOMER_ID]`."""
    regex: str | None = None
    """Pattern (Python `re` syntax), already known to compile."""
    keywords: tuple[str, ...] = ()
    """Literal phrases; a finding is any occurrence of one of them."""
    case_insensitive: bool = True
    """Keyword matching ignores case unless set to false (regexes use inline flags such as `(?i)`)."""


class DetectorRegistry(Protocol):
    """What the policy layer needs from the detector catalog."""

    def builtin_names(self) -> Collection[str]:
        """Names of the built-in detectors, e.g. `pii.email`, `secrets.aws_access_key`."""
        ...

    def scanner(self, names: Collection[str], custom: Sequence[CustomDetector]) -> Scanner:
        """A scanner that looks for exactly the detectors in ``names`` (built-in or among ``custom``).

        Called once per policy version at load time, never per request. ``names`` may be empty.
        """
        ...


def is_glob(selector: str) -> bool:
    return any(ch in selector for ch in "*?[")


def expand_selector(selector: str, known: Iterable[str]) -> list[str]:
    """Detector names a selector stands for: itself if it is a known name, else the names its glob matches."""
    known = list(known)
    if not is_glob(selector):
        return [selector] if selector in known else []
    rx = re.compile(fnmatch.translate(selector))
    return sorted(name for name in known if rx.match(name))


def glob_regex(patterns: Iterable[str]) -> re.Pattern[str]:
    """One compiled regex matching any of the shell-style globs (``*`` also matches ``/``), case-sensitive."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
