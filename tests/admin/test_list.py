"""`GET /admin/sessions`: time window, subject, paging with an opaque cursor, parameter errors."""
from __future__ import annotations

import pytest

from gateway.admin.catalog import find_sessions
from gateway.audit import layout
from gateway.audit.store import MemoryStore
from tests.admin.conftest import INVESTIGATOR, write_sessions
from tests.audit.logbuilder import raw_set

# (session, subject, first record time, records): 12 sessions 10 s apart, alice and bob alternating, unsorted ids
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


async def test_one_call_examines_a_bounded_number_of_entries(store):
    page = await find_sessions(store, limit=50, subject="bob", scan_limit=4)
    assert [s["id"] for s in page.sessions] == [SPECS[1][0], SPECS[3][0]] and page.last_key
    rest = await find_sessions(store, limit=50, subject="bob", after=page.last_key)
    assert [s["id"] for s in rest.sessions] == [s for s, sub, *_ in SPECS[4:] if sub == "bob"]
    assert rest.last_key is None


async def test_catalog_entry_not_matching_its_key_is_flagged(client, store):
    key = layout.catalog_key(SPECS[0][2], SPECS[0][0])
    raw_set(store, key, b'{"session_id":"other","subject":"mallory","time":"2025-03-01T10:00:00.000Z"}')
    first = (await get(client))["sessions"][0]
    assert first["id"] == SPECS[0][0] and first["subject"] is None and "verify" in first["problem"]
    assert SPECS[0][0] not in ids(await get(client, subject="mallory"))


@pytest.mark.parametrize("params,param", [
    ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"since": "yesterday"}, "since"), ({"since": "2025-03-01T10:00:00"}, "since"), ({"until": "-5"}, "until"),
    ({"since": str(T0 + 10), "until": str(T0)}, "until"),
    ({"cursor": "bm90LWEta2V5"}, "cursor"), ({"cursor": "%%%"}, "cursor"),
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
