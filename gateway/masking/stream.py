"""One-shot masking and the split-safe streaming masker (one per logical stream key).

``StreamMasker.feed(chunk)`` returns the text that is now final, masked, and holds back only what could still
become part of a match (a trailing ``AKIA12``, a word that could be an email's local part, an open PEM block).
``flush()`` masks and releases the rest at the end of the stream.

**Invariant.** While no cap is hit, for any text and any chunking,
``"".join(feed(c) for c in chunks) + flush() == mask_text(text)[0]``. The masker keeps ``CONTEXT_CHARS`` of
released text as left context, asks :meth:`Scanner.step` for the final matches and the cut, renders
``[released, cut)`` and keeps the rest.

**Caps (fail closed).** When the held text exceeds ``max_hold_chars``, or its oldest character has been held for
``max_hold_s`` (checked on ``feed`` and on ``poll``), the held text is replaced *as a whole* by ``[REDACTED]`` and
never released. The masker keeps scanning after such an event with the redacted raw text as the start of its
buffer (up to ``retain_chars``), so a value that began inside the redacted part is still masked when it ends:
what follows the redaction is emitted only once nothing open starts inside it. Equality with ``mask_text`` is not
promised for a stream that hit a cap: its output differs exactly where ``[REDACTED]`` stands, and a value longer
than ``retain_chars`` that began in redacted text can lose its beginning (its tail is then scanned on its own).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from gateway.detect.model import CONTEXT_CHARS
from gateway.masking.errors import MaskingError
from gateway.masking.scanner import Match, Scanner
from gateway.masking.styles import REDACTED, Style

DEFAULT_MAX_HOLD_CHARS = 4096
DEFAULT_MAX_HOLD_S = 5.0


def _render(text: str, start: int, end: int, matches: list[Match], style: Style, counts: dict[str, int]) -> str:
    """``text[start:end]`` with every match replaced; a match that began before ``start`` is rendered clipped."""
    out = []
    cur = start
    for m in matches:
        if m.end <= start:
            continue
        if m.start >= end:
            break
        if m.start > cur:
            out.append(text[cur:m.start])
        out.append(style.render(m, text[m.start:m.end]))
        cur = m.end
        for name in m.detectors:
            counts[name] = counts.get(name, 0) + 1
    if cur < end:
        out.append(text[cur:end])
    return "".join(out)


def mask_text(text: str, scanner: Scanner, style: Style) -> tuple[str, dict[str, int]]:
    """Mask a whole text at once: (masked text, number of matches per detector)."""
    counts: dict[str, int] = {}
    return _render(text, 0, len(text), scanner.scan(text), style, counts), counts


class Masker:
    """A scanner and a style: one-shot masking, and a :class:`StreamMasker` per logical stream."""

    def __init__(self, scanner: Scanner, style: Style) -> None:
        self.scanner = scanner
        self.style = style

    def mask_text(self, text: str) -> tuple[str, dict[str, int]]:
        """(masked text, matches per detector) — for request bodies, logs, excerpts."""
        return mask_text(text, self.scanner, self.style)

    def stream(self, *, max_hold_chars: int = DEFAULT_MAX_HOLD_CHARS, max_hold_s: float = DEFAULT_MAX_HOLD_S,
               clock: Callable[[], float] = time.monotonic) -> StreamMasker:
        return StreamMasker(self.scanner, self.style, max_hold_chars=max_hold_chars, max_hold_s=max_hold_s,
                            clock=clock)


class StreamMasker:
    """Masks one logical stream (one ``Delta.stream_key``) chunk by chunk."""

    def __init__(self, scanner: Scanner, style: Style, *, max_hold_chars: int = DEFAULT_MAX_HOLD_CHARS,
                 max_hold_s: float = DEFAULT_MAX_HOLD_S, clock: Callable[[], float] = time.monotonic,
                 retain_chars: int | None = None) -> None:
        if max_hold_chars < 1 or max_hold_s <= 0:
            raise ValueError("max_hold_chars and max_hold_s must be positive")
        self._scanner = scanner
        self._style = style
        self._max_chars = max_hold_chars
        self._max_s = max_hold_s
        self._clock = clock
        self._retain = retain_chars if retain_chars is not None else max(4 * max_hold_chars, 32768)
        self._ctx = ""
        self._buf = ""
        self._redacted = 0  # leading characters of _buf already sent as [REDACTED]
        self._base = 0  # stream offset of _buf[0]
        self._arrivals: deque[tuple[int, float]] = deque()  # (stream offset after a fed chunk, its arrival time)
        self._closed = False
        self.counts: dict[str, int] = {}
        """Masked spans per detector so far (a merged span counts once for each contributing detector)."""
        self.cap_redactions = 0
        """How many times held text was replaced by ``[REDACTED]`` because a cap was hit."""

    @property
    def held(self) -> int:
        """Characters received but not yet released (nor redacted)."""
        return len(self._buf) - self._redacted

    @property
    def closed(self) -> bool:
        return self._closed

    def feed(self, text: str) -> str:
        """Add the next piece of the stream; return the text that became final (masked)."""
        if self._closed:
            raise MaskingError("feed() after flush() or after a masking error")
        if not isinstance(text, str):
            self._closed = True
            raise MaskingError(f"feed() takes str, not {type(text).__name__}")
        now = self._clock()
        out = ""
        if text:
            self._buf += text
            self._arrivals.append((self._base + len(self._buf), now))
            out = self._advance(final=False)
        return out + self._enforce_caps(now)

    def poll(self) -> str:
        """Apply the time cap without new text (call from a timer while a stream is quiet)."""
        if self._closed:
            return ""
        return self._enforce_caps(self._clock())

    def flush(self) -> str:
        """End of stream: mask and release everything still held."""
        if self._closed:
            raise MaskingError("flush() called twice or after a masking error")
        out = self._advance(final=True)
        self._closed = True
        return out

    # --- internals ---------------------------------------------------------------------------------------------

    def _advance(self, final: bool) -> str:
        ctx, buf = self._ctx, self._buf
        text = ctx + buf
        pos = len(ctx)
        try:
            if final:
                matches, cut = self._scanner.scan(text, pos), len(text)
            else:
                matches, cut = self._scanner.step(text, pos)
        except MaskingError:
            self._closed = True
            raise
        except Exception as exc:
            self._closed = True
            raise MaskingError(f"masking failed: {exc.__class__.__name__}") from exc
        start = pos + self._redacted
        out = _render(text, start, cut, matches, self._style, self.counts) if cut > start else ""
        if cut > pos:
            self._release(text, pos, cut)
        return out

    def _release(self, text: str, pos: int, cut: int) -> None:
        n = cut - pos
        self._ctx = text[max(0, cut - CONTEXT_CHARS):cut]
        self._buf = self._buf[n:]
        self._redacted = max(0, self._redacted - n)
        self._base += n
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] <= self._base + self._redacted:
            arrivals.popleft()

    def _enforce_caps(self, now: float) -> str:
        held = len(self._buf) - self._redacted
        if held <= 0:
            return ""
        first_held = self._base + self._redacted
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] <= first_held:
            arrivals.popleft()
        oldest = arrivals[0][1] if arrivals else now
        if held <= self._max_chars and now - oldest < self._max_s:
            return ""
        self._redacted = len(self._buf)
        self.cap_redactions += 1
        if len(self._buf) > self._retain:
            ctx = self._ctx
            text = ctx + self._buf
            self._release(text, len(ctx), len(ctx) + len(self._buf) - self._retain)
        return REDACTED
