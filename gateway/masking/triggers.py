"""Trigger prefilters: which detectors *could* match in a text, and where to look.

Every built-in detector has a ``trigger`` regex that occurs inside each of its raw matches (``@`` for emails,
``AKIA``… for AWS keys, four digits + four digits for cards). A prefilter answers two questions:

- ``present(text, start)``: the detectors whose trigger occurs in ``text[start:]`` (streaming: a detector without
  its trigger in the unreleased text cannot have a complete match there, so it is not run);
- ``hits(text, start)``: positions of trigger occurrences (one-shot scanning looks only near them).

Answers may over-approximate (report a detector that has no trigger, or extra positions) but never miss one.

Two engines, same answers:

- ``HyperscanTriggers`` (optional ``hyperscan`` wheel): all triggers in one database, ~0.4 µs per short chunk,
  ~1 GB/s over bulk text. Offsets are mapped back from UTF-8 bytes to characters.
- ``PythonTriggers`` (always available): each trigger is reduced (through ``re._parser``) to required lowercase
  literals, checked with ``in`` / ``str.find`` on ``text.casefold()`` (C speed), and only then confirmed with the
  compiled trigger regex (stdlib ``re``). Triggers with no usable literal (digit shapes) are gated on "has an
  ASCII digit" and then searched with ``re``, one top-level alternative at a time for ``hits``.

A ``Scanner`` (and so its prefilter) may be shared by all streams of one thread; Hyperscan's scratch space is not
thread-safe, so give each thread its own scanner.
"""
from __future__ import annotations

import bisect
import contextlib
import re
import re._constants as _c  # type: ignore[import-not-found]
import re._parser as _p  # type: ignore[import-not-found]
from collections.abc import Sequence
from typing import Protocol

from gateway.detect.model import Detector

DIGIT = "<digit>"
"""Stands for \"an ASCII digit\" in a list of required literals."""
_DIGIT = DIGIT
_DIGIT_RX = re.compile(r"[0-9]")


class Triggers(Protocol):
    name: str

    def present(self, text: str, start: int) -> list[int]:
        """Indexes (into the detector list) whose trigger occurs in ``text[start:]``, ascending."""
        ...

    def hits(self, text: str, start: int) -> dict[int, list[int]]:
        """Index -> ascending start offsets of trigger occurrences in ``text[start:]`` (absolute offsets)."""
        ...


def trigger_width(trigger: str) -> int:
    """Longest string the trigger can match (bounded for every trigger we accept)."""
    try:
        return min(_p.parse(trigger).getwidth()[1], 1 << 16)
    except Exception:  # noqa: BLE001 - a `regex`-only construct: stay conservative
        return 1 << 16


# --- required literals -------------------------------------------------------------------------------------------

def required_literals(trigger: str) -> list[str] | None:
    """Alternatives, at least one of which occurs (casefolded) in every match of ``trigger``; None if unknown.

    ``DIGIT`` in the list stands for "an ASCII digit". Examples: ``A(?:KIA|SIA)`` -> ``["kia", "sia"]``,
    ``[Ss][Ee][Cc][Rr][Ee][Tt]`` -> ``["secret"]``, ``\\+[1-9]|[0-9]{3}[ .-][0-9]{4}`` -> ``["+", DIGIT]``.
    """
    try:
        parsed = _p.parse(trigger)
    except Exception:  # noqa: BLE001
        return None
    if parsed.state.flags & _c.SRE_FLAG_IGNORECASE:
        return None  # keep it simple: built-ins spell case out with classes
    return _seq_requirement(list(parsed.data))


def _score(req: list[str]) -> float:
    def one(lit: str) -> float:
        if lit == _DIGIT:
            return 1.5
        return sum(1.0 if ch.isalpha() else 2.0 for ch in lit)
    return min(one(x) for x in req)


def _case_pair(items) -> str | None:
    if len(items) == 2 and all(op is _c.LITERAL for op, _ in items):
        a, b = chr(items[0][1]), chr(items[1][1])
        if a != b and a.isascii() and a.isalpha() and a.lower() == b.lower():
            return a.lower()
    return None


def _is_digit_class(items) -> bool:
    """An ``IN`` node that only admits ASCII digits (``[0-9]``, ``[1-9]``)."""
    for op, val in items:
        if op is _c.RANGE:
            if not (48 <= val[0] and val[1] <= 57):
                return False
        elif op is _c.LITERAL:
            if not 48 <= val <= 57:
                return False
        else:
            return False
    return bool(items)


def _seq_requirement(nodes) -> list[str] | None:
    options: list[list[str]] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            options.append(["".join(run)])
            run.clear()

    for op, av in nodes:
        if op is _c.LITERAL:
            run.append(chr(av).casefold())
            continue
        if op is _c.IN:
            pair = _case_pair(av)
            if pair is not None:
                run.append(pair)
                continue
            close_run()
            if _is_digit_class(av):
                options.append([_DIGIT])
            continue
        close_run()
        if op is _c.SUBPATTERN:
            sub = _seq_requirement(list(av[-1].data))
            if sub:
                options.append(sub)
        elif op is _c.BRANCH:
            alts = [_seq_requirement(list(alt.data)) for alt in av[1]]
            if all(alts):
                options.append([x for alt in alts for x in alt])  # type: ignore[union-attr]
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and av[0] >= 1:
            sub = _seq_requirement(list(av[2].data))
            if sub:
                options.append(sub)
    close_run()
    if not options:
        return None
    return max(options, key=_score)


# --- engines -----------------------------------------------------------------------------------------------------

class PythonTriggers:
    """Literal gates on ``str.casefold()`` plus stdlib ``re`` confirmation, one entry per top-level alternative."""

    name = "python"

    def __init__(self, detectors: Sequence[Detector]) -> None:
        # Streaming gate per detector: (index, required literals of the whole trigger or None, trigger regex).
        self._gates: list[tuple[int, list[str] | None, re.Pattern[str]]] = []
        # One-shot hits per detector: (index, [(required literals or None, compiled alternative)]).
        self._entries: list[tuple[int, list[tuple[list[str] | None, re.Pattern[str]]]]] = []
        for i, d in enumerate(detectors):
            if d.trigger is None:
                continue
            alts = []
            for alt in split_alternatives(d.trigger):
                lits = required_literals(alt)
                alts.append((_minimal_literals(lits) if lits is not None else None, re.compile(_unroll(alt))))
            self._entries.append((i, alts))
            gate = None
            if all(lits is not None for lits, _ in alts):
                gate = _minimal_literals([x for lits, _ in alts for x in lits])  # type: ignore[union-attr]
            self._gates.append((i, gate, re.compile(_unroll(d.trigger))))

    def present(self, text: str, start: int) -> list[int]:
        seg = text[start:] if start else text
        low: str | None = None
        has_digit: bool | None = None
        out = []
        for i, lits, rx in self._gates:
            if lits is not None:
                ok = False
                for lit in lits:
                    if lit is _DIGIT:
                        if has_digit is None:
                            has_digit = _DIGIT_RX.search(seg) is not None
                        ok = has_digit
                    else:
                        if low is None:
                            low = seg.casefold()
                        ok = lit in low
                    if ok:
                        break
                if not ok:
                    continue
            if rx.search(seg) is not None:
                out.append(i)
        return out

    def hits(self, text: str, start: int) -> dict[int, list[int]]:
        seg = text[start:] if start else text
        low = seg.casefold()
        same_len = len(low) == len(seg)
        out: dict[int, list[int]] = {}
        for i, alts in self._entries:
            pos: list[int] = []
            literals: list[str] = []
            for lits, rx in alts:
                if lits is not None and same_len and _DIGIT not in lits and min(map(len, lits)) >= 3:
                    literals.extend(lits)  # a required literal lies inside the trigger, so inside the match
                else:
                    pos.extend(m.start() + start for m in rx.finditer(seg))
            for lit in _minimal_literals(literals):
                j = low.find(lit)
                while j >= 0:
                    pos.append(j + start)
                    j = low.find(lit, j + 1)
            if pos:
                pos.sort()
                out[i] = pos
        return out


def split_alternatives(pattern: str) -> list[str]:
    """Top-level ``|`` alternatives of a regex (outside groups and classes)."""
    out, cur = [], []
    depth, in_class, i = 0, False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            cur.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]" or pattern[i + 1:i + 3] == "^]":
                cur.append(pattern[i:i + (2 if pattern[i + 1] == "]" else 3)])
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


_SMALL_REPEAT = re.compile(r"(\[[A-Za-z0-9 .()-]+\])\{([1-4])\}")


def _unroll(pattern: str) -> str:
    """``[0-9]{3}`` -> ``[0-9][0-9][0-9]``: same language, and stdlib ``re`` scans it about twice as fast."""
    return _SMALL_REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), pattern)


def _minimal_literals(lits: list[str]) -> list[str]:
    """Drop duplicates and literals that contain another one (finding the shorter one is enough)."""
    uniq = sorted(set(lits), key=len)
    keep: list[str] = []
    for lit in uniq:
        if lit is not _DIGIT and lit != _DIGIT and any(k != _DIGIT and k in lit for k in keep):
            continue
        keep.append(_DIGIT if lit == _DIGIT else lit)
    return keep


class HyperscanTriggers:
    """All triggers in one Hyperscan database (block mode); a second one with start-of-match for ``hits``."""

    name = "hyperscan"

    def __init__(self, detectors: Sequence[Detector]) -> None:
        import hyperscan  # optional dependency

        self._hs = hyperscan
        ids, exprs = [], []
        for i, d in enumerate(detectors):
            if d.trigger is not None:
                ids.append(i)
                exprs.append(_to_bytes_pattern(d.trigger))
        self._ids = ids
        self._presence = None
        self._positions = None
        if ids:
            self._presence = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._presence.compile(expressions=exprs, ids=ids, elements=len(ids),
                                   flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(ids))
            self._positions = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._positions.compile(expressions=exprs, ids=ids, elements=len(ids),
                                    flags=[hyperscan.HS_FLAG_SOM_LEFTMOST] * len(ids))

    def present(self, text: str, start: int) -> list[int]:
        if self._presence is None:
            return []
        seg = text[start:] if start else text
        found: list[int] = []

        def on_match(i: int, _frm: int, _to: int, _flags: int, _ctx: object) -> None:
            found.append(i)

        self._presence.scan(seg.encode("utf-8", "surrogatepass"), match_event_handler=on_match)
        found.sort()
        return found

    def hits(self, text: str, start: int) -> dict[int, list[int]]:
        if self._positions is None:
            return {}
        seg = text[start:] if start else text
        data = seg.encode("utf-8", "surrogatepass")
        out: dict[int, list[int]] = {}

        def on_match(i: int, frm: int, _to: int, _flags: int, _ctx: object) -> None:
            lst = out.get(i)
            if lst is None:
                out[i] = [frm]
            else:
                lst.append(frm)

        self._positions.scan(data, match_event_handler=on_match)
        if len(data) != len(seg):
            to_char = _ByteToChar(seg)
            out = {i: [to_char(b) for b in pos] for i, pos in out.items()}
        for i, pos in out.items():
            pos.sort()
            if start:
                out[i] = [p + start for p in pos]
        return out


class _ByteToChar:
    """Maps UTF-8 byte offsets of ``text`` to character offsets (only built for non-ASCII text)."""

    def __init__(self, text: str) -> None:
        self._byte_after: list[int] = []
        self._extra: list[int] = []
        extra = 0
        for m in re.finditer(r"[^\x00-\x7f]", text):
            ch = m.group()
            extra += len(ch.encode("utf-8", "surrogatepass")) - 1
            self._byte_after.append(m.end() + extra)
            self._extra.append(extra)

    def __call__(self, byte_off: int) -> int:
        k = bisect.bisect_right(self._byte_after, byte_off)
        return byte_off - (self._extra[k - 1] if k else 0)


def _to_bytes_pattern(trigger: str) -> bytes:
    """Hyperscan pattern over UTF-8 bytes: non-ASCII literal characters become their escaped byte sequence."""
    out = []
    for ch in trigger:
        if ch.isascii():
            out.append(ch)
        else:
            out.append("(?:" + "".join(f"\\x{b:02x}" for b in ch.encode("utf-8")) + ")")
    return "".join(out).encode("ascii")


def hyperscan_available() -> bool:
    try:
        import hyperscan  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def make_triggers(detectors: Sequence[Detector], engine: str) -> Triggers | None:
    """``pure`` -> None (no prefilter); ``python``; ``hyperscan``; ``auto`` = hyperscan when importable."""
    if engine == "pure":
        return None
    if engine == "python":
        return PythonTriggers(detectors)
    if engine == "hyperscan":
        return HyperscanTriggers(detectors)
    if engine == "auto":
        if hyperscan_available():
            # A trigger Hyperscan can't compile falls back to the Python engine, which gives the same answers.
            with contextlib.suppress(Exception):
                return HyperscanTriggers(detectors)
        return PythonTriggers(detectors)
    raise ValueError(f"unknown masking engine {engine!r} (pure, python, hyperscan, auto)")
