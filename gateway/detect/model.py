"""The detector model: one named pattern with an optional validator, and the constructors policies use.

A detector's regex is written for the `regex` module (mrab), because the streaming masker asks it for *partial*
matches (could this text still become a match if more arrived?). Three properties of a pattern matter to the
scanning engine (:mod:`gateway.masking.scanner`):

- **No end anchors.** In a stream, the end of the text seen so far is not the end of the text, so ``$``, ``\\Z``,
  ``\\z`` (and start anchors ``^``/``\\A``, which would see the start of the retained window) are refused.
  ``\\b``/``\\B`` are rewritten into lookaround form, which the partial matcher treats as "undecided at the end"
  (the `regex` module decides a plain ``\\b`` at the end of the string as if the text had ended).
- **Bounded left context.** Lookbehinds may look at most ``CONTEXT_CHARS`` characters back; the stream keeps that
  much already-released text as context.
- **Trigger, max_len, max_pre** (built-ins and keyword detectors): ``trigger`` is a regex that matches inside
  *every* raw match of the pattern (a necessary substring) and has no lookarounds; ``max_len`` bounds the
  characters any attempt of the pattern can consume (plus at most 8 of trailing lookahead); ``max_pre`` bounds
  how far into a match its first trigger occurrence can start. Together they let the scanner look only near
  trigger hits and stay exact. A trigger must also be such that a match prefix *not yet containing it* is made
  only of token characters (letters, digits, ``_.%+-:/``, the trigger's own literal characters) or of
  digit-group characters (digits, space, ``().+-``); the streaming tail rule relies on it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import regex as _regex

CONTEXT_CHARS = 64
"""Left context (characters of already-released text) every pattern may rely on through lookbehinds."""

Validator = Callable[[str], bool]

_WORD_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
_NOT_WORD_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"


class DetectorError(ValueError):
    """A detector definition is unusable (bad regex, unsupported anchor, empty keyword list)."""


@dataclass(frozen=True, slots=True)
class Detector:
    """A named pattern that finds one kind of sensitive value."""

    name: str
    """Catalog name: ``pii.email``, ``secrets.aws_access_key``, or a policy's own name (``customer_id``)."""
    label: str
    """What the value is replaced by: ``EMAIL`` renders as ``[EMAIL]``."""
    pattern: str
    """Regex source (`regex` module syntax, already rewritten: lookaround word boundaries, no anchors)."""
    validator: Validator | None = None
    """Called with the masked value (the value group when there is one); False discards the match."""
    value_group: str | int | None = None
    """Group holding the secret part (e.g. the value of ``password=...``); None masks the whole match."""
    max_len: int | None = None
    """Upper bound on the characters any attempt of ``pattern`` consumes; None = unbounded (always scanned)."""
    trigger: str | None = None
    """Regex matching inside every raw match (a necessary substring); None = no prefilter for this detector."""
    max_pre: int | None = None
    """Every raw match has a trigger occurrence starting at most this many characters after the match start
    (defaults to ``max_len``); keeps one-shot scan windows small when the trigger opens the match."""
    hint: Callable[[str], str] | None = None
    """For the ``partial`` style: a safe hint from the value (last 4 digits of a card, an email's domain)."""
    compiled: Any = field(init=False, repr=False, compare=False)
    """``pattern`` compiled with the `regex` module."""

    def __post_init__(self) -> None:
        if not self.name or not self.label:
            raise DetectorError("a detector needs a name and a label")
        try:
            rx = _regex.compile(self.pattern)
        except _regex.error as exc:
            raise DetectorError(f"detector {self.name!r}: invalid regex: {exc}") from None
        if rx.search("") is not None:
            raise DetectorError(f"detector {self.name!r}: the regex matches the empty string")
        if self.value_group is not None:
            names = rx.groupindex
            ok = self.value_group in names if isinstance(self.value_group, str) else self.value_group <= rx.groups
            if not ok:
                raise DetectorError(f"detector {self.name!r}: no group {self.value_group!r} in the regex")
        if self.trigger is not None:
            try:
                _regex.compile(self.trigger)
            except _regex.error as exc:
                raise DetectorError(f"detector {self.name!r}: invalid trigger: {exc}") from None
        object.__setattr__(self, "compiled", rx)


def rewrite_pattern(source: str, *, name: str = "?") -> str:
    """Make a user regex stream-safe: ``\\b``/``\\B`` become lookarounds, anchors are refused.

    Walks the source once, copying escapes and character classes verbatim (inside a class ``\\b`` is a backspace).
    """
    out: list[str] = []
    i, n = 0, len(source)
    in_class = False
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n:
            nxt = source[i + 1]
            if not in_class and nxt == "b":
                out.append(_WORD_BOUNDARY)
            elif not in_class and nxt == "B":
                out.append(_NOT_WORD_BOUNDARY)
            elif not in_class and nxt in "AZz":
                raise DetectorError(f"detector {name!r}: anchor \\{nxt} is not supported in streamed text")
            else:
                out.append(source[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A ']' right after '[' or '[^' is a literal member, not the end of the class.
            if i < n and source[i] == "^":
                out.append("^")
                i += 1
            if i < n and source[i] == "]":
                out.append("]")
                i += 1
            continue
        if ch in "^$":
            raise DetectorError(f"detector {name!r}: anchor {ch!r} is not supported in streamed text")
        out.append(ch)
        i += 1
    return "".join(out)


def regex_detector(name: str, regex: str, label: str) -> Detector:
    """A custom detector from a policy's ``{name, regex, label}`` entry.

    The regex is scanned everywhere (no trigger), so any valid `regex`-module pattern works as long as it has no
    anchors and looks back at most ``CONTEXT_CHARS`` characters.
    """
    return Detector(name=name, label=label, pattern=rewrite_pattern(regex, name=name))


def keyword_detector(name: str, keywords: Iterable[str], label: str, case_insensitive: bool = True) -> Detector:
    """A custom detector matching any of ``keywords`` on word boundaries.

    Whitespace inside a keyword matches 1–4 whitespace characters (``"Project Falcon"`` also finds
    ``"Project\\nFalcon"``). Case-insensitivity is ASCII-only, so a keyword never matches through Unicode case
    folding tricks that the prefilter would not see.
    """
    words = sorted({" ".join(k.split()) for k in keywords if k and k.strip()}, key=len, reverse=True)
    if not words:
        raise DetectorError(f"detector {name!r}: no keywords")
    alts = []
    for w in words:
        parts = [_literal(tok, case_insensitive) for tok in w.split(" ")]
        body = r"\s{1,4}".join(parts)
        if _is_word_char(w[0]):
            body = r"(?<!\w)" + body
        if _is_word_char(w[-1]):
            body = body + r"(?!\w)"
        alts.append(body)
    pattern = "(?:" + "|".join(alts) + ")"
    trigger = "(?:" + "|".join(_literal(w.split(" ")[0], case_insensitive) for w in words) + ")"
    longest = max(len(w) for w in words)
    return Detector(name=name, label=label, pattern=pattern, trigger=trigger, max_len=longest * 4 + 8, max_pre=0)


def ci(word: str) -> str:
    """ASCII case-insensitive regex for a literal word (``"key"`` -> ``[Kk][Ee][Yy]``)."""
    return _literal(word, True)


def _literal(text: str, case_insensitive: bool) -> str:
    if not case_insensitive:
        return _regex.escape(text)
    out = []
    for ch in text:
        if "a" <= ch.lower() <= "z" and ch.isascii():
            out.append(f"[{ch.upper()}{ch.lower()}]")
        else:
            out.append(_regex.escape(ch))
    return "".join(out)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"
