import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit import layout
from gateway.audit.store import validate_key


def test_keys_and_parsers_round_trip():
    k = layout.record_key("s1-ab", 42)
    assert k == "streams/s1-ab/records/00000000000000000042.json"
    assert layout.parse_record_key(k) == ("s1-ab", 42)
    d = layout.digest_key("s1-ab", 3)
    assert d == "streams/s1-ab/digests/00000000000000000003.json"
    assert layout.parse_digest_key(d) == ("s1-ab", 3) and layout.parse_record_key(d) is None
    i = layout.session_index_key("bob@corp:7", 5, "s1-ab", 42)
    assert i == "sessions/bob=40corp=3A7/000000000005-s1-ab-00000000000000000042"
    assert i.startswith(layout.session_prefix("bob@corp:7"))
    assert layout.parse_session_index_key(i) == ("bob@corp:7", 5, "s1-ab", 42)
    for key in (k, d, i):
        validate_key(key)


def test_session_index_lists_in_session_order():
    keys = [layout.session_index_key("s", n, "st", 101 - n) for n in (1, 2, 9, 10, 11, 100)]
    assert sorted(keys) == keys


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", "x" * 65])
def test_bad_stream_ids(bad):
    with pytest.raises(ValueError):
        layout.record_key(bad, 1)


@pytest.mark.parametrize("bad", [0, -1, 10**20, True])
def test_bad_sequence_numbers(bad):
    with pytest.raises(ValueError):
        layout.record_key("s", bad)


def test_parsers_reject_foreign_keys():
    assert layout.parse_record_key("streams/s/records/1.json") is None
    assert layout.parse_record_key("streams/s/records/00000000000000000000.json") is None
    assert layout.parse_session_index_key("sessions/=ZZ/000000000001-s-00000000000000000001") is None
    assert layout.parse_session_index_key("sessions/a=61/000000000001-s-00000000000000000001") is None  # not canonical


@given(st.text(min_size=1, max_size=40))
def test_segment_encoding_round_trips_and_is_a_valid_key(value):
    seg = layout.encode_segment(value)
    assert layout.decode_segment(seg) == value
    validate_key(f"sessions/{seg}/x")
