"""Masking: the scanning engine, rendering styles, and the split-safe streaming masker.

Typical use (one :class:`Scanner` per policy generation, one :class:`StreamMasker` per ``Delta.stream_key``)::

    scanner = Scanner(select(["pii.*", "secrets.*"], extra=custom_detectors))
    masker = Masker(scanner, make_style("label"))
    masked, counts = masker.mask_text(request_text)
    sm = masker.stream(max_hold_chars=4096, max_hold_s=5.0)
    out = sm.feed(delta.text)  # ... at end of stream: sm.flush()

Any :class:`MaskingError` means the stream must be terminated (`stream_terminated`), never passed through.
"""
from gateway.masking.errors import MaskingError
from gateway.masking.scanner import Match, Scanner
from gateway.masking.stream import DEFAULT_MAX_HOLD_CHARS, DEFAULT_MAX_HOLD_S, Masker, StreamMasker, mask_text
from gateway.masking.styles import REDACTED, KeyedHashStyle, LabelStyle, PartialStyle, Style, make_style

__all__ = [
    "DEFAULT_MAX_HOLD_CHARS",
    "DEFAULT_MAX_HOLD_S",
    "REDACTED",
    "KeyedHashStyle",
    "LabelStyle",
    "Masker",
    "MaskingError",
    "Match",
    "PartialStyle",
    "Scanner",
    "StreamMasker",
    "Style",
    "make_style",
    "mask_text",
]
