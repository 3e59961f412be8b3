"""Tests of the dialect layer: SSE framing, codecs, request texts."""
