import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit import layout
from gateway.audit.store import validate_key

MAX = layout.MAX_SEGMENT_RECORDS


def test_keys_and_parsers_round_trip():
    k = layout.segment_key("s1-ab", 42, 50)
    assert k == "streams/s1-ab/segments/00000000000000000042-00000000000000000050.jsonl"
    assert k.startswith(layout.segment_prefix("s1-ab")) and layout.segment_prefix("s1-ab").startswith(
        layout.stream_prefix("s1-ab"))
    assert layout.parse_segment_key(k) == ("s1-ab", 42, 50)
    d = layout.digest_key("s1-ab", 3)
    assert d == "streams/s1-ab/digests/00000000000000000003.json"
    assert layout.parse_digest_key(d) == ("s1-ab", 3) and layout.parse_segment_key(d) is None
    assert layout.parse_digest_key(k) is None
    i = layout.session_index_key("bob@corp:7", 5, "s1-ab", 42, 50)
    assert i == "sessions/bob=40corp=3A7/000000000005-s1-ab-00000000000000000042-00000000000000000050"
    assert i.startswith(layout.session_prefix("bob@corp:7"))
    assert layout.parse_session_index_key(i) == ("bob@corp:7", 5, "s1-ab", 42, 50)
    c = layout.catalog_key("2026-11-26T10:30:09.123Z", "s1-ab", 42)
    assert c == "catalog/20261126T103009123Z-s1-ab-00000000000000000042"
    assert layout.parse_catalog_key(c) == ("20261126T103009123Z", "s1-ab", 42)
    assert c > layout.catalog_start("20261126T103009123Z") > layout.catalog_start("20261126T103009122Z")
    for key in (k, d, i, c):
        validate_key(key)


def test_one_record_segment_and_the_largest_one():
    assert layout.parse_segment_key(layout.segment_key("s", 7, 7)) == ("s", 7, 7)
    assert layout.parse_segment_key(layout.segment_key("s", 1, MAX)) == ("s", 1, MAX)
    top = 10**20 - 1
    assert layout.parse_segment_key(layout.segment_key("s", top - MAX + 1, top)) == ("s", top - MAX + 1, top)


@pytest.mark.parametrize("first, last", [(5, 4), (1, MAX + 1), (0, 3), (10, 10 + MAX)])
def test_segment_ranges_beyond_the_bound_are_refused(first, last):
    with pytest.raises(ValueError):
        layout.segment_key("s", first, last)
    with pytest.raises(ValueError):
        layout.session_index_key("x", 1, "s", first, last)
    forged = f"streams/s/segments/{first:020d}-{last:020d}.jsonl"
    assert layout.parse_segment_key(forged) is None
    assert layout.parse_session_index_key(f"sessions/x/000000000001-s-{first:020d}-{last:020d}") is None


def test_segments_list_in_stream_order():
    ranges = [(1, 1), (2, 9), (10, 10), (11, 999), (1000, 1999), (2000, 2000), (10**12, 10**12 + 5)]
    keys = [layout.segment_key("st", a, b) for a, b in ranges]
    assert sorted(keys) == keys


@pytest.mark.parametrize("seq", [1, 2, 999, 1000, 1001, 5000, 123_456])
def test_segment_search_start_meets_the_segment_holding_seq_first(seq):
    """Listing after `segment_search_start(seq)` must not skip the segment that holds `seq` (it may start up to
    MAX - 1 records earlier), and the first segment it lists may not end much before it."""
    start = layout.segment_search_start("st", seq)
    assert start.startswith(layout.segment_prefix("st"))
    for first in {max(1, seq - MAX + 1), max(1, seq - 1), seq}:
        for last in {seq, first + MAX - 1}:
            assert layout.segment_key("st", first, last) > start, (first, last)
    if seq > MAX:  # segments that cannot hold seq (they end too early) are skipped
        assert layout.segment_key("st", seq - MAX, seq - MAX) < start
        assert layout.segment_key("st", max(1, seq - 2 * MAX + 1), seq - MAX) < start


def test_session_index_lists_in_session_order():
    keys = [layout.session_index_key("s", n, "st", 101 - n, 101 - n) for n in (1, 2, 9, 10, 11, 100)]
    assert sorted(keys) == keys


def test_catalog_keys_list_in_time_order():
    times = ["2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.001Z", "2025-01-01T23:59:59.999Z",
             "2025-01-02T00:00:00.000Z", "2026-11-26T10:30:09.123Z"]
    keys = [layout.catalog_key(t, "zz", 1) for t in times]
    assert sorted(keys) == keys
    with pytest.raises(ValueError):
        layout.catalog_key("2025-01-01T00:00:00Z", "s", 1)  # no milliseconds


def test_spool_record_names():
    name = layout.spool_record_name("s1-ab", 42)
    assert name == "r/s1-ab/00000000000000000042"
    assert layout.parse_spool_record_name(name) == ("s1-ab", 42)
    assert layout.parse_spool_record_name("r/s1-ab/42") is None
    assert layout.parse_spool_record_name("r/s1-ab/00000000000000000000") is None
    names = [layout.spool_record_name("s", n) for n in (1, 2, 10, 999, 1000)]
    assert sorted(names) == names


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", "x" * 65])
def test_bad_stream_ids(bad):
    with pytest.raises(ValueError):
        layout.segment_key(bad, 1, 1)
    with pytest.raises(ValueError):
        layout.spool_record_name(bad, 1)


@pytest.mark.parametrize("bad", [0, -1, 10**20, True])
def test_bad_sequence_numbers(bad):
    with pytest.raises(ValueError):
        layout.segment_key("s", bad, bad)
    with pytest.raises(ValueError):
        layout.digest_key("s", bad)
    with pytest.raises(ValueError):
        layout.spool_record_name("s", bad)


def test_parsers_reject_foreign_keys():
    assert layout.parse_segment_key("streams/s/segments/1-2.jsonl") is None
    assert layout.parse_segment_key(f"streams/s/segments/{0:020d}-{0:020d}.jsonl") is None
    assert layout.parse_segment_key(f"streams/s/segments/{1:020d}-{1:020d}.json") is None
    assert layout.parse_segment_key(f"streams/s/records/{1:020d}.json") is None  # the v1 layout
    assert layout.parse_session_index_key(f"sessions/=ZZ/000000000001-s-{1:020d}-{1:020d}") is None
    assert layout.parse_session_index_key(f"sessions/a=61/000000000001-s-{1:020d}-{1:020d}") is None  # not canonical
    assert layout.parse_session_index_key(f"sessions/a/000000000000-s-{1:020d}-{1:020d}") is None
    assert layout.parse_session_index_key(f"sessions/a/000000000001-s-{1:020d}") is None  # the v1 layout
    assert layout.parse_catalog_key("catalog/20250101T000000000Z-alice") is None  # the v1 layout
    assert layout.parse_catalog_key(f"catalog/20250101T000000000Z-s-{0:020d}") is None


@given(st.text(min_size=1, max_size=40))
def test_segment_encoding_round_trips_and_is_a_valid_key(value):
    seg = layout.encode_segment(value)
    assert layout.decode_segment(seg) == value
    validate_key(f"sessions/{seg}/x")
