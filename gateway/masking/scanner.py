"""The scanning engine: union of per-detector matches, validated and merged; exact on windows and on streams.

**Semantics.** For each detector, its *raw matches* are what a left-to-right search loop finds (search from
``q``; record the match; continue from its end — like ``finditer``). A raw match is *accepted* when its validator
agrees; the masked span is its value group (or the whole match). The scan result is the **union** over detectors
— one detector never shadows another the way a leftmost-first alternation would — with overlapping spans merged:
a merged span covers all of its contributors and takes the name/label of the **longest** contributor (ties: the
earlier detector in the scanner's order — built-ins list specific secret formats first — then the earlier
start). Spans that merely touch are not merged.

**Exactness.** Scanning a suffix ``scan(text, pos)`` sees the left context through lookbehinds and returns the
whole-text matches that start at or after ``pos`` whenever no raw match straddles ``pos`` (the stream masker only
ever cuts at such points). One-shot scanning looks only near trigger hits: for a detector whose ``max_len`` bounds
every attempt, raw matches can only start within ``max_len`` before a trigger occurrence, so searching merged
windows (with ``endpos`` = window end + ``max_len``) finds exactly the raw matches a whole-text loop would;
``max_pre`` (how far into a match its trigger can start) narrows where such a match can begin.

**Streaming step** (:meth:`Scanner.step`, used by :class:`~gateway.masking.stream.StreamMasker`): over the
unreleased text ``text[pos:]`` (which may still grow) it returns the matches that are final and the *cut*: the
first position whose fate could still change. For a detector that is run, the `regex` module's partial matching
on ``(?:P)(?!)`` (a pattern that can never complete) finds the leftmost position from which some path of ``P``
reaches the end of the text — anything before it, and any complete match starting before it and ending before
the end, is decided. Detectors whose trigger is absent from ``text[pos:]`` cannot have a complete match there;
for them the cut is bounded by cheap tail rules (the trailing run of token characters, and of digit-group
characters), which never cut later than the true partial-match start. Finally the cut is moved left until no raw
match of any detector straddles it, so that scanning can resume at the cut with exactly the whole-text results.
The `regex` module sometimes answers "could still match" too eagerly (a lazy repeat followed by a literal, a
variable-length lookbehind); that only holds more, never less, and the built-in patterns avoid both constructs.

**Engines.** ``engine="pure"`` runs every detector everywhere (the reference). ``"python"`` and ``"hyperscan"``
add a trigger prefilter (:mod:`.triggers`); ``"auto"`` (the default) picks Hyperscan when the wheel is installed.
All give identical results (the tests run each against ``pure``). Detectors always run on the `regex` module:
partial matching is what makes exact holdback possible, and neither RE2 nor Hyperscan has it (nor lookbehind).
Measured with ``python -m bench.masking_bench`` on the 2-core dev box (300k chars of reasoning prose with code and
planted values, model-like chunks of 1–40 chars, mean 8; one-shot over 2 MB of prose/code/JSON logs):

=========  ============  ==========  ========  ==============  ========================
engine     µs/chunk p50  p99         held p50  one-shot MB/s   3.3 KB PEM, 4-char chunks
=========  ============  ==========  ========  ==============  ========================
hyperscan  3.2           4.9         3 chars   43              42 ms (~50 µs/chunk)
python     4.9           8.6         3 chars   17              110 ms
pure       81            169         3 chars   2.7             45 ms
=========  ============  ==========  ========  ==============  ========================

Hyperscan scans all triggers of a short chunk in ~0.4 µs and 2 MB in ~3 ms (all occurrences, overlapping, per
detector). google-re2 was also measured: ~1.1 µs per short chunk for one combined trigger pattern and ~190 MB/s,
but it reports one leftmost match at a time (no per-detector overlapping hits), so it can't replace either engine.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import regex

from gateway.detect.model import Detector
from gateway.masking.errors import MaskingError
from gateway.masking.triggers import DIGIT, Triggers, make_triggers, required_literals, trigger_width

LOOKAHEAD_SLACK = 8
"""Characters beyond ``max_len`` a pattern's trailing lookahead may inspect."""

TAIL_TOKEN_MAX = 128
"""Longest match prefix without its trigger made of token characters (an email's local part: 64)."""
TAIL_GROUP_MAX = 32
"""Longest match prefix without its trigger made of digit-group characters (``1-(415) 555-013``: 15)."""
_DIGIT_GROUP_CHARS = "0123456789 ().+-"
_DIGIT_GROUP_LEAD_JUNK = " ).-"
_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_._%+-:/"


@dataclass(frozen=True, slots=True)
class Match:
    """A masked span of the scanned text."""

    start: int
    """Offset of the first masked character."""
    end: int
    """Offset after the last masked character."""
    name: str
    """Detector that names the span (the longest contributor)."""
    label: str
    """That detector's label (``EMAIL``)."""
    detectors: tuple[str, ...] = ()
    """Every detector whose accepted match contributed to the span, in scanner order."""


class Scanner:
    """Finds the matches of a fixed set of detectors; stateless and shareable between streams."""

    def __init__(self, detectors: Iterable[Detector], *, engine: str = "auto", timeout_s: float | None = 1.0):
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError("detector names must be unique")
        self._timeout = timeout_s
        self._p = [d.compiled for d in self.detectors]
        self._q = [regex.compile(f"(?:{d.pattern})(?!)") for d in self.detectors]
        self._triggers: Triggers | None = make_triggers(self.detectors, engine)
        self.engine = "pure" if self._triggers is None else self._triggers.name
        """Which prefilter runs: ``pure`` (none), ``python`` or ``hyperscan``."""
        # Detectors the prefilter can't speak for run on every step / over the whole text.
        self._always = [i for i, d in enumerate(self.detectors) if d.trigger is None or self._triggers is None]
        self._windowed: dict[int, tuple[int, int, int]] = {}
        for i, d in enumerate(self.detectors):
            if d.trigger is not None and d.max_len is not None:
                width = trigger_width(d.trigger)
                pre = d.max_len if d.max_pre is None else d.max_pre
                self._windowed[i] = (d.max_len + LOOKAHEAD_SLACK, pre + width, width)
        token = set(_TOKEN_CHARS)
        longest = 0
        for d in self.detectors:
            if d.trigger is not None:
                token.update(_literal_chars(d.trigger))
                longest = max([longest] + [len(x) for x in required_literals(d.trigger) or []])
        self._token_chars = "".join(sorted(token))
        self._token_tail_max = max(TAIL_TOKEN_MAX, longest)

    # --- one-shot ------------------------------------------------------------------------------------------------

    def scan(self, text: str, pos: int = 0) -> list[Match]:
        """Accepted, merged matches of ``text[pos:]`` (lookbehinds see ``text[:pos]``), in order."""
        return self._merge(text, self._final_raws(text, pos))

    def _final_raws(self, text: str, pos: int) -> list[tuple]:
        raws: list[tuple] = []
        n = len(text)
        if self._triggers is None:
            for i in range(len(self.detectors)):
                self._loop(i, text, pos, n, n, raws)
            return raws
        for i in self._always:
            self._loop(i, text, pos, n, n, raws)
        try:
            hits = self._triggers.hits(text, pos)
        except Exception as exc:
            raise MaskingError(f"trigger prefilter failed: {exc.__class__.__name__}") from exc
        for i, positions in hits.items():
            bound = self._windowed.get(i)
            if bound is None:
                self._loop(i, text, pos, n, n, raws)
                continue
            # A raw match starts in [h - pre, h + width] of one of its trigger hits h and ends within `span` of
            # its start; windows closer than `span` are merged so no match can straddle a window's start.
            span, pre, width = bound
            w_start = max(pos, positions[0] - pre)
            w_end = positions[0] + width
            for h in positions[1:]:
                if h - pre <= w_end + span:
                    w_end = h + width
                    continue
                self._loop(i, text, w_start, w_end, min(n, w_end + span), raws)
                w_start, w_end = max(pos, h - pre), h + width
            self._loop(i, text, w_start, w_end, min(n, w_end + span), raws)
        return raws

    def _loop(self, i: int, text: str, start: int, last_start: int, endpos: int, raws: list[tuple]) -> None:
        """The search loop of detector ``i`` for matches starting in ``[start, last_start]``."""
        rx = self._p[i]
        q = start
        timeout = self._timeout
        while q <= last_start:
            try:
                m = rx.search(text, q, endpos, timeout=timeout)
            except TimeoutError as exc:
                raise MaskingError(f"detector {self.detectors[i].name} timed out") from exc
            if m is None:
                return
            s, e = m.span()
            if s > last_start:
                return
            if s == e:
                q = s + 1
                continue
            raws.append(self._raw(i, m))
            q = e

    def _raw(self, i: int, m) -> tuple:
        d = self.detectors[i]
        if d.value_group is None:
            vs, ve = m.span()
        else:
            vs, ve = m.span(d.value_group)
        return (m.start(), m.end(), vs, ve, i)

    # --- streaming ----------------------------------------------------------------------------------------------

    def step(self, text: str, pos: int) -> tuple[list[Match], int]:
        """For text that may still grow: (final matches in ``[pos, cut)``, cut). See the module docstring."""
        n = len(text)
        if pos >= n:
            return [], n
        if self._triggers is None:
            run = range(len(self.detectors))
            cut = n
        else:
            try:
                triggered = self._triggers.present(text, pos)
            except Exception as exc:
                raise MaskingError(f"trigger prefilter failed: {exc.__class__.__name__}") from exc
            run = sorted(set(self._always).union(triggered)) if triggered else self._always
            cut = self._tail_hold(text, pos)
            if not run:
                return [], cut
        raws: list[tuple] = []
        for i in run:
            cut = min(cut, self._stream_loop(i, text, pos, cut, raws))
        if raws:
            moved = True
            while moved:
                moved = False
                for r in raws:
                    if r[0] < cut < r[1]:
                        cut = r[0]
                        moved = True
            raws = [r for r in raws if r[1] <= cut]
        return self._merge(text, raws), cut

    def _tail_hold(self, text: str, pos: int) -> int:
        """Leftmost start any untriggered detector's partial match could have (conservative).

        Such a partial is a match prefix without the trigger: a trailing run of token characters at most
        ``_token_tail_max`` long, or of digit-group characters (not starting with a separator) at most
        ``TAIL_GROUP_MAX`` long. Only the last few characters are looked at, so long runs cost nothing.
        """
        n = len(text)
        tm = self._token_tail_max
        tail = text[-tm - 1:]
        a = max(n - len(tail) + len(tail.rstrip(self._token_chars)), n - tm)
        tail = text[-TAIL_GROUP_MAX - 1:]
        b = n - len(tail) + len(tail.rstrip(_DIGIT_GROUP_CHARS))
        if b < n:
            run = text[b:]
            b += len(run) - len(run.lstrip(_DIGIT_GROUP_LEAD_JUNK))
        b = max(b, n - TAIL_GROUP_MAX)
        return max(pos, min(a, b))

    def _stream_loop(self, i: int, text: str, pos: int, limit: int, raws: list[tuple]) -> int:
        """Raw final matches of detector ``i`` from ``pos``; returns its cut (first undecided position)."""
        n = len(text)
        p_rx, q_rx = self._p[i], self._q[i]
        timeout = self._timeout
        q = pos
        viable = -1
        try:
            while q < limit:
                if viable < q:
                    hm = q_rx.search(text, q, partial=True, timeout=timeout)
                    viable = hm.start() if hm is not None else n
                m = p_rx.search(text, q, timeout=timeout)
                if m is None:
                    return viable
                s, e = m.span()
                if s >= viable:
                    return viable
                if s >= limit:
                    return s
                if e >= n:
                    return s  # a match reaching the end of the text may still grow
                if s == e:
                    q = s + 1
                    continue
                raws.append(self._raw(i, m))
                q = e
        except TimeoutError as exc:
            raise MaskingError(f"detector {self.detectors[i].name} timed out") from exc
        return q

    # --- validation and merging ---------------------------------------------------------------------------------

    def _merge(self, text: str, raws: list[tuple]) -> list[Match]:
        accepted = []
        for rs, re_, vs, ve, i in raws:
            if vs < 0 or ve <= vs:
                continue
            d = self.detectors[i]
            if d.validator is not None:
                try:
                    ok = d.validator(text[vs:ve])
                except Exception as exc:
                    raise MaskingError(f"validator of {d.name} failed: {exc.__class__.__name__}") from exc
                if not ok:
                    continue
            accepted.append((vs, ve, i))
        if not accepted:
            return []
        accepted.sort()
        out: list[Match] = []
        group = [accepted[0]]
        g_end = accepted[0][1]
        for item in accepted[1:]:
            if item[0] < g_end:
                group.append(item)
                g_end = max(g_end, item[1])
            else:
                out.append(self._merged(group, g_end))
                group, g_end = [item], item[1]
        out.append(self._merged(group, g_end))
        return out

    def _merged(self, group: list[tuple], end: int) -> Match:
        if len(group) == 1:
            vs, ve, i = group[0]
            d = self.detectors[i]
            return Match(vs, ve, d.name, d.label, (d.name,))
        win = min(group, key=lambda g: (-(g[1] - g[0]), g[2], g[0]))
        d = self.detectors[win[2]]
        names = tuple(self.detectors[i].name for i in sorted({g[2] for g in group}))
        return Match(group[0][0], end, d.name, d.label, names)


def _literal_chars(trigger: str) -> set[str]:
    """Characters of a trigger's required literals, both cases.

    A detector's match prefix that does not yet contain its trigger is, for custom keyword detectors, a prefix of
    a keyword's first word; these characters join the token characters of the tail rule so such a prefix is held.
    """
    chars: set[str] = set()
    for lit in required_literals(trigger) or []:
        if lit == DIGIT:
            continue
        for ch in lit:
            chars.update({ch, ch.upper(), ch.lower()})
    return chars
