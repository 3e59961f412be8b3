"""How a masked span is rendered: ``label`` -> ``[EMAIL]``, ``keyed_hash`` -> ``[EMAIL:3f9a1c]``, ``partial``.

``keyed_hash`` is HMAC-SHA256(key, value) cut to 6 hex digits: the same value always gives the same tag, so an
investigator can see that two sessions leaked the same address without the address itself, and without the key
nobody can confirm a guess. ``partial`` keeps a hint that is safe to show (a card's last 4 digits, an email's
domain, an IBAN's country; nothing for secrets); spans made of several detectors' matches get no hint unless the
winning detector's hint applies to the merged text.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Protocol

from gateway.detect.model import Detector
from gateway.masking.scanner import Match

REDACTED = "[REDACTED]"
"""What held text is replaced by when a hold cap is hit (its content was never classified)."""


class Style(Protocol):
    name: str

    def render(self, match: Match, value: str) -> str:
        """The replacement for ``value`` (the masked text of ``match``)."""
        ...


class LabelStyle:
    name = "label"

    def render(self, match: Match, value: str) -> str:
        return f"[{match.label}]"


class KeyedHashStyle:
    name = "keyed_hash"

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the keyed_hash masking style needs a non-empty key")
        self._key = bytes(key)

    def tag(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return digest[:6]

    def render(self, match: Match, value: str) -> str:
        return f"[{match.label}:{self.tag(value)}]"


class PartialStyle:
    name = "partial"

    def __init__(self, hints: dict[str, Callable[[str], str]]) -> None:
        self._hints = hints

    def render(self, match: Match, value: str) -> str:
        fn = self._hints.get(match.name)
        if fn is not None:
            try:
                hint = fn(value)
            except Exception:  # noqa: BLE001 - no hint is always safe
                hint = ""
            if hint:
                return f"[{match.label}:{hint}]"
        return f"[{match.label}]"


def make_style(name: str, detectors: Iterable[Detector] = (), *, key: bytes | None = None) -> Style:
    """The style named in a policy's ``masking.style``."""
    if name == "label":
        return LabelStyle()
    if name == "keyed_hash":
        return KeyedHashStyle(key or b"")
    if name == "partial":
        return PartialStyle({d.name: d.hint for d in detectors if d.hint is not None})
    raise ValueError(f"unknown masking style {name!r} (label, keyed_hash, partial)")
