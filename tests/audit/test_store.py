import asyncio
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit.store import FileStore, MemoryStore, ObjectStore, list_all, store_from_uri
from tests.audit.store_contract import CHECKS


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path) -> ObjectStore:
    return MemoryStore() if request.param == "memory" else FileStore(tmp_path / "log")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(store, check):
    assert isinstance(store, ObjectStore)
    await check(store)


async def test_file_store_layout_on_disk(tmp_path):
    store = FileStore(tmp_path)
    await store.put_if_absent("streams/x/records/1.json", b"{}")
    assert (tmp_path / "streams" / "x" / "records" / "1.json").read_bytes() == b"{}"
    assert not [n for n in os.listdir(tmp_path / "streams" / "x" / "records") if n.startswith(".")]
    (tmp_path / "streams" / "x" / "records" / ".tmp-leftover").write_bytes(b"junk")  # a crash mid-write
    assert await store.list("streams/") == ["streams/x/records/1.json"]


async def test_file_store_survives_reopen(tmp_path):
    await FileStore(tmp_path).put_if_absent("a/b", b"1")
    assert await FileStore(tmp_path).get("a/b") == b"1"


def test_store_from_uri(tmp_path):
    s = store_from_uri(f"file://{tmp_path}/audit")
    assert isinstance(s, FileStore) and s.root == f"{tmp_path}/audit"
    assert isinstance(store_from_uri("memory://"), MemoryStore)
    with pytest.raises(ValueError):
        store_from_uri("ftp://x")
    with pytest.raises(ValueError):
        store_from_uri("file://")


_seg = st.sampled_from(["a", "ab", "a-b", "a.b", "b", "0", "00", "x_1", "Z"])
_keys = st.lists(st.lists(_seg, min_size=1, max_size=3).map("/".join), max_size=25, unique=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=_keys, prefix=st.sampled_from(["", "a", "a/", "a-", "ab/", "b/0", "zz"]),
       after=st.none() | st.sampled_from(["a", "a/a", "a-b", "ab/a-b", "b"]), limit=st.integers(0, 6))
def test_file_store_lists_exactly_like_memory_store(tmp_path_factory, keys, prefix, after, limit):
    # a file and a directory cannot share a name: drop keys that are a directory of another key
    keys = [k for k in keys if not any(o.startswith(k + "/") for o in keys)]

    async def run():
        mem, fs = MemoryStore(), FileStore(tmp_path_factory.mktemp("fs"), fsync=False)
        for k in keys:
            await mem.put_if_absent(k, b"1")
            await fs.put_if_absent(k, b"1")
        assert await fs.list(prefix, start_after=after, limit=limit) == \
            await mem.list(prefix, start_after=after, limit=limit)
        assert await list_all(fs, prefix, page=2) == await list_all(mem, prefix, page=2)

    asyncio.run(run())
