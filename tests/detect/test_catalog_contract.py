"""The claims the scanning engine relies on, checked on every sample (true, near miss, innocent, in contexts).

- every raw match (validated or not) is at most ``max_len`` long and contains a trigger occurrence that starts
  at most ``max_pre`` characters into it;
- a match prefix that does not yet contain the trigger is a short run of token characters, or of digit-group
  characters not starting with a separator (the streaming tail rule);
- at every prefix of a text, ``Scanner.step`` returns exactly the whole-text matches that end before its cut and
  never cuts inside a whole-text match — for every engine.
"""
from __future__ import annotations

import pytest
import regex

from gateway.detect import BUILTIN, keyword_detector, regex_detector
from gateway.masking import Scanner
from gateway.masking.scanner import _DIGIT_GROUP_CHARS, _DIGIT_GROUP_LEAD_JUNK, TAIL_GROUP_MAX
from tests.detect.samples import INNOCENT, NEGATIVE, POSITIVE

CUSTOM = [keyword_detector("design_docs", ["Project Falcon", "design doc"], "INTERNAL_DOC"),
          regex_detector("customer_id", r"\bCUST-\d{8}\b", "CUSTOMER_ID")]
DETECTORS = list(BUILTIN) + CUSTOM

TEXTS = sorted({ctx.format(t) for items in POSITIVE.values() for t, _ in items for ctx in ("{}", "a {} b.")}
               | {f"x {t} y" for items in NEGATIVE.values() for t in items}
               | {f"see {t} now" for t in INNOCENT}
               | {"Project Falcon design doc CUST-12345678 and project  falcon, DESIGN DOCS"})


def raw_matches(d, text):
    q = 0
    while True:
        m = d.compiled.search(text, q)
        if m is None:
            return
        if m.end() > m.start():
            yield m
        q = max(m.end(), m.start() + 1)


@pytest.mark.parametrize("d", [d for d in DETECTORS if d.trigger is not None], ids=lambda d: d.name)
def test_trigger_and_bounds(d):
    trig = regex.compile(d.trigger)
    pre = d.max_len if d.max_pre is None else d.max_pre
    seen = 0
    for text in TEXTS:
        for m in raw_matches(d, text):
            seen += 1
            assert m.end() - m.start() <= d.max_len, (text, m)
            occ = [t.start() for t in trig.finditer(m.group(), overlapped=True)]
            assert occ and occ[0] <= pre, (m.group(), occ)
    assert seen, "no sample exercises this detector"


@pytest.mark.parametrize("d", [d for d in DETECTORS if d.trigger is not None], ids=lambda d: d.name)
def test_untriggered_prefixes_fit_the_tail_rule(d):
    sc = Scanner([d], engine="python")
    token = set(sc._token_chars)
    group = set(_DIGIT_GROUP_CHARS)
    trig = regex.compile(d.trigger)
    for text in TEXTS:
        for m in raw_matches(d, text):
            s = m.group()
            for k in range(1, len(s) + 1):
                p = s[:k]
                if trig.search(p):
                    break
                fits = ((set(p) <= token and len(p) <= sc._token_tail_max)
                        or (set(p) <= group and p[0] not in _DIGIT_GROUP_LEAD_JUNK and len(p) <= TAIL_GROUP_MAX))
                assert fits, (d.name, p)


_ORACLE = Scanner(DETECTORS, engine="pure")


def test_step_is_exact_at_every_prefix(engine):
    sc = _ORACLE if engine == "pure" else Scanner(DETECTORS, engine=engine)
    for text in TEXTS:
        truth = _ORACLE.scan(text)
        for k in range(len(text) + 1):
            matches, cut = sc.step(text[:k], 0)
            assert 0 <= cut <= k
            assert not any(m.start < cut < m.end for m in truth), (text, k, cut)
            assert matches == [m for m in truth if m.end <= cut], (text, k, cut)
