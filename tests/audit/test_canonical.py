import json
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.canonical import MAX_INT, CanonicalError, canonical_bytes, decode


def jcs_reference(v) -> str:
    """A direct reading of RFC 8785 for the value types the log allows."""
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            o = ord(ch)
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch in "\b\f\n\r\t":
                out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
            elif o < 0x20:
                out.append(f"\\u{o:04x}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(v, list):
        return "[" + ",".join(jcs_reference(x) for x in v) + "]"
    items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
    return "{" + ",".join(jcs_reference(k) + ":" + jcs_reference(x) for k, x in items) + "}"


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_INT, MAX_INT) | text,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(text, kids, max_size=5),
    max_leaves=30,
)


def shuffled(v, rnd):
    if isinstance(v, dict):
        items = list(v.items())
        rnd.shuffle(items)
        return {k: shuffled(x, rnd) for k, x in items}
    if isinstance(v, list):
        return [shuffled(x, rnd) for x in v]
    return v


@given(json_values)
def test_round_trip_and_matches_rfc8785(v):
    try:
        b = canonical_bytes(v)
    except CanonicalError as e:  # only the documented refusal: mixed BMP-high / astral keys
        assert "astral" in str(e)
        return
    assert decode(b) == v
    assert b == jcs_reference(v).encode("utf-8")
    assert canonical_bytes(decode(b)) == b


@given(json_values, st.integers(0, 2**32))
def test_key_order_does_not_matter(v, seed):
    try:
        b = canonical_bytes(v)
    except CanonicalError:
        return
    assert canonical_bytes(shuffled(v, random.Random(seed))) == b


def test_exact_bytes():
    assert canonical_bytes({"b": [1, True, None], "a": "é\n\u0001/"}) == '{"a":"é\\n\\u0001/","b":[1,true,null]}'.encode()


@pytest.mark.parametrize("bad", [1.5, 1.0, math.nan, math.inf, -math.inf, MAX_INT + 1, b"x", (1,), {1: 2},
                                 {"a": [{"b": float("nan")}]}, "\ud800"])
def test_refuses_what_has_no_canonical_form(bad):
    with pytest.raises(CanonicalError):
        canonical_bytes(bad)
