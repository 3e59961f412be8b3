"""Rendering styles: label, keyed_hash (HMAC, correlatable), partial (safe hints only)."""
from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from gateway.detect import BUILTIN
from gateway.masking import Masker, Scanner, make_style
from tests.detect.samples import github_classic

SCANNER = Scanner(BUILTIN, engine="python")


def masked(style, text):
    return Masker(SCANNER, style).mask_text(text)[0]


def test_label():
    assert masked(make_style("label"), "mail a.b@example.com now") == "mail [EMAIL] now"


def test_keyed_hash_is_hmac_and_correlates():
    style = make_style("keyed_hash", key=b"k1")
    out = masked(style, "from a.b@example.com to c@example.org and again a.b@example.com")
    tags = re.findall(r"\[EMAIL:([0-9a-f]{6})\]", out)
    assert len(tags) == 3 and tags[0] == tags[2] != tags[1]
    assert tags[0] == hmac.new(b"k1", b"a.b@example.com", hashlib.sha256).hexdigest()[:6]
    other = masked(make_style("keyed_hash", key=b"k2"), "a.b@example.com")
    assert other != f"[EMAIL:{tags[0]}]"
    with pytest.raises(ValueError):
        make_style("keyed_hash")


def test_partial_hints():
    style = make_style("partial", BUILTIN)
    token = github_classic()
    out = masked(style, f"card 4111 1111 1111 1111, mail jane@example.com, iban GB82 WEST 1234 5698 7654 32, "
                        f"tel +1 (415) 555-0134, token {token}, ip 10.1.2.3")
    assert out == ("card [CREDIT_CARD:…1111], mail [EMAIL:…@example.com], iban [IBAN:GB…], "
                   "tel [PHONE:…34], token [GITHUB_TOKEN], ip [IPV4]")
    assert "jane" not in out and token[:8] not in out


def test_unknown_style():
    with pytest.raises(ValueError):
        make_style("rot13")
