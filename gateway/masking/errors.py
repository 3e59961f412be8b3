"""The one exception the masking layer raises."""
from __future__ import annotations


class MaskingError(Exception):
    """Masking could not be done safely (a detector timed out, a validator or prefilter failed, a closed stream
    was fed). The caller ends the stream (`stream_terminated`) rather than let unmasked text through. The message
    never contains payload text."""
