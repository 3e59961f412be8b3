"""`GET /admin/sessions`: time window, subject, paging with an opaque cursor, parameter errors; the merge over
catalog objects (one per segment) of two writer streams whose times interleave."""
from __future__ import annotations

import base64
import itertools

import orjson
import pytest

from gateway.admin import params
from gateway.admin.catalog import earlier, find_sessions
from gateway.audit import layout
from gateway.audit.canonical import decode
from gateway.audit.store import MemoryStore
from tests.admin.conftest import INVESTIGATOR, SESSION_STREAMS, write_sessions
from tests.audit.logbuilder import raw_set

# (session, subject, first record time, records): 12 sessions 5 s apart, alice and bob alternating, unsorted ids
SPECS = [(f"s{(i * 7) % 12:02d}@team:{i}", "alice" if i % 2 == 0 else "bob", f"2025-03-01T10:00:{i * 5:02d}.000Z",
          1 + i % 3) for i in range(12)]
T0 = 1740823200  # 2025-03-01T10:00:00Z


@pytest.fixture
async def store() -> MemoryStore:
    store = MemoryStore()
    await write_sessions(store, SPECS)
    return store


@pytest.fixture
async def client(make_client, make_ctx, store):
    return await make_client(make_ctx(store=store))


async def get(client, **params) -> dict:
    resp = await client.get("/admin/sessions", params=params, headers=INVESTIGATOR)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def ids(page: dict) -> list[str]:
    return [s["id"] for s in page["sessions"]]


def catalog_objects(store) -> dict[str, list[dict]]:
    return {k: decode(store._objects[k]) for k in store._objects if k.startswith(layout.CATALOG)}


# 15 one-record sessions 0.1-0.3 s apart over three seconds, taking turns on the two streams: catalog objects of
# both streams hold several entries and overlap in time
DENSE = [(f"o{i:02d}", "u", f"2025-03-04T00:00:0{i // 5}.{(i % 5) * 200 + i * 7 % 50:03d}Z", 1) for i in range(15)]


async def test_the_catalog_is_objects_of_both_streams_overlapping_in_time():
    store = MemoryStore()
    await write_sessions(store, DENSE)
    objects = catalog_objects(store)
    streams = {layout.parse_catalog_key(k)[1] for k in objects}
    spans = sorted((body[0]["time"], body[-1]["time"]) for body in objects.values())
    assert streams == set(SESSION_STREAMS) and max(len(b) for b in objects.values()) >= 2
    assert any(later[0] < earlier_[1] for earlier_, later in itertools.pairwise(spans))  # key order != entry order
    for key, body in objects.items():  # one UTC second per object
        assert {layout.catalog_bucket(e["time"]) for e in body} == {layout.parse_catalog_key(key)[0][:15]}
    page = await find_sessions(store, limit=100)
    assert [s["id"] for s in page.sessions] == [s for s, *_ in sorted(DENSE, key=lambda d: (d[2], d[0]))]


async def test_lists_every_session_oldest_first(client):
    page = await get(client)
    assert ids(page) == [s for s, *_ in SPECS] and page["next"] is None
    assert page["sessions"][3] == {"id": SPECS[3][0], "subject": "bob", "started_at": "2025-03-01T10:00:15.000Z",
                                   "first_record_hash": page["sessions"][3]["first_record_hash"]}
    assert len(page["sessions"][3]["first_record_hash"]) == 64


async def test_time_window_since_inclusive_until_exclusive(client):
    page = await get(client, since="2025-03-01T10:00:10Z", until="2025-03-01T10:00:30Z")
    assert ids(page) == [s for s, *_ in SPECS[2:6]]
    # unix seconds, and another zone, name the same instants
    assert ids(await get(client, since=str(T0 + 10), until=str(T0 + 30))) == ids(page)
    assert ids(await get(client, since="2025-03-01T11:00:10+01:00", until="2025-03-01T11:00:30+01:00")) == ids(page)
    # sub-millisecond bounds round outwards: nothing inside the window is lost
    assert ids(await get(client, since=f"{T0 + 9.9999}", until=f"{T0 + 10.0001}")) == [SPECS[2][0]]
    assert ids(await get(client, since="2025-03-01T10:01:00Z")) == []
    assert ids(await get(client, until="2025-03-01T10:00:05Z")) == [SPECS[0][0]]


async def test_subject_filter(client):
    assert ids(await get(client, subject="bob")) == [s for s, sub, *_ in SPECS if sub == "bob"]
    assert ids(await get(client, subject="carol")) == []
    assert ids(await get(client, subject="alice", since=str(T0 + 20))) == [s for s, *_ in SPECS[4::2]]


@pytest.mark.parametrize("filters", [{}, {"subject": "alice"}, {"since": str(T0 + 5), "until": str(T0 + 50)}])
@pytest.mark.parametrize("limit", [1, 2, 5, 12])
async def test_paging_with_cursor_visits_each_session_once(client, filters, limit):
    everything = ids(await get(client, **filters))
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page = await get(client, limit=str(limit), **filters, **({"cursor": cursor} if cursor else {}))
        assert len(page["sessions"]) <= limit
        seen += ids(page)
        cursor = page["next"]
        if cursor is None:
            break
        assert "/" not in cursor and "=" not in cursor  # opaque and URL-safe
    assert seen == everything and cursor is None


async def test_default_and_maximum_limit(make_client, make_ctx):
    store = MemoryStore()
    await write_sessions(store, [(f"bulk-{i:04d}", "u", f"2025-03-02T00:{i // 60:02d}:{i % 60:02d}.000Z", 1)
                                 for i in range(520)])
    client = await make_client(make_ctx(store=store))
    page = await get(client)
    assert len(page["sessions"]) == 50 and page["next"]
    page = await get(client, limit="500")
    assert len(page["sessions"]) == 500 and page["next"]
    assert len((await get(client, limit="500", cursor=page["next"]))["sessions"]) == 20


async def test_a_window_start_finds_sessions_in_an_object_keyed_before_it():
    store = MemoryStore()
    await write_sessions(store, DENSE)
    since = "2025-03-04T00:00:01.500Z"
    assert any(k < layout.catalog_start(layout.catalog_time(since)) and b[-1]["time"] >= since
               for k, b in catalog_objects(store).items())
    page = await find_sessions(store, limit=100, since=layout.catalog_time(since))
    assert [s["id"] for s in page.sessions] == [s for s, _, t, _ in sorted(DENSE, key=lambda d: (d[2], d[0]))
                                                if t >= since]


async def test_one_call_examines_a_bounded_number_of_entries(store):
    page = await find_sessions(store, limit=50, subject="bob", scan_limit=4)
    assert [s["id"] for s in page.sessions] == [SPECS[1][0], SPECS[3][0]]
    assert page.last == (layout.catalog_time(SPECS[3][2]), SPECS[3][0])
    rest = await find_sessions(store, limit=50, subject="bob", after=page.last)
    assert [s["id"] for s in rest.sessions] == [s for s, sub, *_ in SPECS[4:] if sub == "bob"]
    assert rest.last is None


async def test_sessions_starting_at_the_same_millisecond_page_one_by_one(make_client, make_ctx):
    """Ties on time, across streams and objects: the cursor's session id keeps paging exact."""
    store = MemoryStore()
    specs = [(f"tie-{i:02d}", "u", "2025-03-03T00:00:00.000Z" if i < 7 else "2025-03-03T00:00:00.001Z", 1)
             for i in (5, 2, 9, 0, 7, 3, 8, 1, 6, 4)]
    await write_sessions(store, specs, batch=2)
    client = await make_client(make_ctx(store=store))
    seen, cursor = [], None
    while True:
        page = await get(client, limit="1", **({"cursor": cursor} if cursor else {}))
        seen += ids(page)
        if (cursor := page["next"]) is None:
            break
    assert seen == sorted(s for s, *_ in specs)


@pytest.fixture
async def broken(store) -> tuple[str, list[dict]]:
    """The catalog object holding SPECS[2]'s start, overwritten with something that is not a list of entries."""
    key, body = next((k, b) for k, b in catalog_objects(store).items()
                     if SPECS[2][0] in [e["session_id"] for e in b])
    raw_set(store, key, b'{"session_id":"other","subject":"mallory","time":"2025-03-01T10:00:00.000Z"}')
    return key, body


async def test_unreadable_catalog_object_is_one_problem_item(client, broken):
    key, lost = broken
    sessions = (await get(client))["sessions"]
    [item] = [s for s in sessions if "problem" in s]
    assert item["id"] is None and item["catalog_key"] == key and "verify" in item["problem"]
    assert item["started_at"] == lost[0]["time"]
    assert ids({"sessions": sessions}) == [None if s == lost[0]["session_id"] else s for s, *_ in SPECS
                                           if s not in [e["session_id"] for e in lost[1:]]]
    # whatever the filter: the investigator learns the list has a hole (and nobody is attributed to mallory)
    assert [s["catalog_key"] for s in (await get(client, subject="mallory"))["sessions"]] == [key]


@pytest.mark.parametrize("body", [
    b"[]",  # no entries
    b"not json",
    b'[{"session_id":"x","subject":"u","time":"2025-03-01T10:00:00.000Z"}]',  # no hash
    b'[{"hash":"h","session_id":"x","subject":"u","time":"2025-03-01T09:59:00.000Z"}]',  # before its key
    (b'[{"hash":"h","session_id":"x","subject":"u","time":"2025-03-01T10:00:00.000Z"},'
     b'{"hash":"h","session_id":"y","subject":"u","time":"2025-03-01T10:01:00.001Z"}]'),  # beyond the span
    (b'[{"hash":"h","session_id":"y","subject":"u","time":"2025-03-01T10:00:00.000Z"},'
     b'{"hash":"h","session_id":"x","subject":"u","time":"2025-03-01T10:00:00.000Z"}]'),  # out of order
])
async def test_catalog_object_not_matching_its_key_is_a_problem_item(body):
    store = MemoryStore()
    key = layout.catalog_key("2025-03-01T10:00:00.000Z", "st", 1)
    store.tamper_set(key, body)
    page = await find_sessions(store, limit=10)
    assert [s.get("catalog_key") for s in page.sessions] == [key]


async def test_a_problem_item_keyed_before_the_window_is_listed_at_its_start(store, broken):
    key, lost = broken
    since = "2025-03-01T10:00:10.500Z"  # the broken object is keyed at 10:00:10.000, within the span before it
    assert key < layout.catalog_start(layout.catalog_time(since))
    page = await find_sessions(store, limit=50, since=layout.catalog_time(since))
    assert page.sessions[0]["catalog_key"] == key and page.sessions[0]["started_at"] == lost[0]["time"]
    # and paging after it goes on without repeating it
    rest = await find_sessions(store, limit=50, since=layout.catalog_time(since), after=(
        layout.catalog_time(since), key))
    assert [s["id"] for s in rest.sessions] == [s["id"] for s in page.sessions[1:]]


def test_earlier():
    assert earlier("20250301T100010000Z", 60_000) == "20250301T095910000Z"
    assert earlier("20250301T100010000Z", layout.CATALOG_SPAN_MS) == "20250301T100009001Z"
    assert earlier("20250101T000000005Z", 10) == "20241231T235959995Z"
    assert earlier("00010101T000030000Z", 60_000) is None


def test_cursor_round_trip():
    for position in [("20250301T100010000Z", "s@team:1"), ("20250301T100010000Z", "catalog/x-st-1")]:
        assert params.decode_cursor(params.encode_cursor(position)) == position


@pytest.mark.parametrize("params,param", [
    ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"since": "yesterday"}, "since"), ({"since": "2025-03-01T10:00:00"}, "since"), ({"until": "-5"}, "until"),
    ({"since": str(T0 + 10), "until": str(T0)}, "until"),
    ({"cursor": "bm90LWEta2V5"}, "cursor"), ({"cursor": "%%%"}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(b'["2025", "s1"]').decode()}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(orjson.dumps(["20251301T000000000Z", "s1"])).decode()}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(orjson.dumps(["20250101T000000000Z", ""])).decode()}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(orjson.dumps({"t": "20250101T000000000Z"})).decode()}, "cursor"),
    ({"subjet": "alice"}, "subjet"),
])
async def test_bad_parameters_are_400_naming_the_parameter(client, params, param):
    resp = await client.get("/admin/sessions", params=params, headers=INVESTIGATOR)
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["code"] == "invalid_request" and err["param"] == param and param in err["message"]


async def test_repeated_parameter_is_400(client):
    resp = await client.get("/admin/sessions?limit=1&limit=2", headers=INVESTIGATOR)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "limit"
