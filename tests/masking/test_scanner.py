"""The scanning engine: union semantics, the merge rule, suffix scanning, engines agreeing, failures."""
from __future__ import annotations

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.detect import BUILTIN, Detector, DetectorError, from_policy, keyword_detector, regex_detector, select
from gateway.masking import MaskingError, Scanner
from gateway.masking.triggers import hyperscan_available
from tests.detect.samples import NEGATIVE, POSITIVE


def test_union_finds_overlapping_matches_that_leftmost_first_would_shadow(engine):
    a = regex_detector("order_ref", r"ORD-\d{4}-[A-Z]{3}", "ORDER")
    b = regex_detector("sku", r"[A-Z]{3}-\d{5}", "SKU")
    text = "ship ORD-2024-ABC-12345 today"
    # A leftmost-first alternation consumes ORD-2024-ABC and never sees ABC-12345.
    alternation = regex.compile(f"(?:{a.pattern})|(?:{b.pattern})")
    assert [m.group() for m in alternation.finditer(text)] == ["ORD-2024-ABC"]
    (m,) = Scanner([a, b], engine=engine).scan(text)
    assert text[m.start:m.end] == "ORD-2024-ABC-12345"
    assert m.detectors == ("order_ref", "sku")
    # Both contributed; the longer contributor (order_ref, 12 chars vs 9) names the merged span.
    assert (m.name, m.label) == ("order_ref", "ORDER")


def test_merge_tie_break_and_touching_spans(engine):
    a = regex_detector("first", r"abc", "A")
    b = regex_detector("second", r"bcd", "B")
    (m,) = Scanner([a, b], engine=engine).scan("xabcdx")
    assert (m.start, m.end, m.name) == (1, 5, "first")  # equal lengths: the earlier detector wins
    (m,) = Scanner([b, a], engine=engine).scan("xabcdx")
    assert m.name == "second"
    touching = Scanner([regex_detector("p", r"ab", "P"), regex_detector("q", r"cd", "Q")], engine=engine)
    assert [(m.start, m.end) for m in touching.scan("abcd")] == [(0, 2), (2, 4)]


def test_same_value_found_by_two_builtins_is_one_span():
    sc = Scanner(BUILTIN, engine="pure")
    text = "aws_secret_access_key = " + POSITIVE["secrets.aws_secret_key"][0][1]
    (m,) = sc.scan(text)
    assert set(m.detectors) == {"secrets.aws_secret_key", "secrets.assignment"}
    assert m.name == "secrets.aws_secret_key"  # same length: the specific detector comes first in BUILTIN


def test_scan_suffix_with_left_context(engine):
    sc = Scanner(BUILTIN, engine=engine)
    text = "mail john@example.com then x@y.io and 10.0.0.1"
    whole = sc.scan(text)
    for pos in range(len(text) + 1):
        if any(m.start < pos < m.end for m in whole):
            continue
        assert sc.scan(text, pos) == [m for m in whole if m.start >= pos], pos
    # Context matters: scanning from the middle of a word does not invent a word start.
    t2 = "AAKIAZ3MQXK7PLW2NRT5B"
    assert sc.scan(t2, 1) == []


WORDS = ["the", "model", "reasons", "that", "value", "is", "\n", ":", "=", "(", ")", ".", ",", '"', "-", "+", "/"]
PLANTS = [t for items in POSITIVE.values() for t, _ in items] + [t for items in NEGATIVE.values() for t in items]


@st.composite
def mixed_texts(draw):
    parts = draw(st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(PLANTS),
                                    st.text(alphabet="ab12@.:-_/ xAKIsk", max_size=8)), max_size=14))
    seps = draw(st.lists(st.sampled_from(["", " ", "  ", "\n"]), min_size=len(parts), max_size=len(parts)))
    return "".join(p + s for p, s in zip(parts, seps))


_PURE = Scanner(BUILTIN, engine="pure")
_FAST = {"python": Scanner(BUILTIN, engine="python")}
if hyperscan_available():
    _FAST["hyperscan"] = Scanner(BUILTIN, engine="hyperscan")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_texts())
def test_engines_agree_on_one_shot_scans(text):
    expected = _PURE.scan(text)
    for sc in _FAST.values():
        assert sc.scan(text) == expected


def test_engines_agree_on_non_ascii_text():
    text = "naïve café → john@example.com ünd 4111 1111 1111 1111 — 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 password=Xk9#mQ2$vLp8 \ud800 end"
    expected = _PURE.scan(text)
    assert {m.name for m in expected} == {"pii.email", "pii.credit_card", "secrets.assignment"}
    for sc in _FAST.values():
        assert sc.scan(text) == expected


def test_validator_failure_is_a_masking_error(engine):
    def boom(_value):
        raise RuntimeError("bug")
    sc = Scanner([Detector(name="x", label="X", pattern="abc", validator=boom, trigger="abc", max_len=3)],
                 engine=engine)
    with pytest.raises(MaskingError):
        sc.scan("xx abc")


def test_catastrophic_regex_times_out_as_masking_error():
    sc = Scanner([regex_detector("evil", r"(a|aa)+c", "EVIL")], engine="pure", timeout_s=0.05)
    with pytest.raises(MaskingError):
        sc.scan("a" * 60)


def test_custom_detectors_from_policy():
    d = from_policy({"name": "customer_id", "regex": r"\bCUST-\d{8}\b", "label": "CUSTOMER_ID"})
    k = from_policy({"name": "design_docs", "keywords": ["Project Falcon", "design doc"], "label": "INTERNAL_DOC"})
    sc = Scanner([d, k], engine="python")
    text = "see CUST-12345678 and project  falcon in the DESIGN DOC, not CUST-123456789 or designdoc"
    assert [(text[m.start:m.end], m.label) for m in sc.scan(text)] == [
        ("CUST-12345678", "CUSTOMER_ID"), ("project  falcon", "INTERNAL_DOC"), ("DESIGN DOC", "INTERNAL_DOC")]
    strict = keyword_detector("kw", ["Falcon"], "K", case_insensitive=False)
    assert [m.start for m in Scanner([strict]).scan("falcon Falcon")] == [7]


@pytest.mark.parametrize("entry,msg", [
    ({"name": "a", "regex": "^start", "label": "A"}, "anchor"),
    ({"name": "a", "regex": r"end\Z", "label": "A"}, "anchor"),
    ({"name": "a", "regex": "(unclosed", "label": "A"}, "invalid regex"),
    ({"name": "a", "regex": "x*", "label": "A"}, "empty"),
    ({"name": "a", "keywords": [], "label": "A"}, "no keywords"),
    ({"name": "a", "label": "A"}, "exactly one"),
    ({"name": "pii.mine", "regex": "x", "label": "A"}, "reserved"),
    ({"name": "a", "regex": "x"}, "label"),
])
def test_bad_policy_detectors_are_refused(entry, msg):
    with pytest.raises(DetectorError, match=msg):
        from_policy(entry)


def test_word_boundary_rewrite_keeps_classes_and_escapes():
    d = regex_detector("x", r"[\b]\bfoo\b\\b", "X")
    assert d.pattern.startswith(r"[\b](?:(?<=\w)")
    assert d.pattern.endswith(r"\\b")


def test_select_by_pattern():
    names = [d.name for d in select(["pii.*"])]
    assert names and all(n.startswith("pii.") for n in names)
    custom = regex_detector("customer_id", r"CUST-\d{8}", "CUSTOMER_ID")
    chosen = select(["secrets.jwt", "customer_id"], extra=[custom])
    assert [d.name for d in chosen] == ["secrets.jwt", "customer_id"]
    with pytest.raises(DetectorError, match="no detector"):
        select(["pii.emial"])
