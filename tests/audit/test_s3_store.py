"""S3Store against a real SeaweedFS (`weed mini` on loopback), plus botocore-Stubber unit tests of the paths a
well-behaved server never takes (412 with different bytes, a store that ignores If-None-Match, 409, 5xx)."""
from __future__ import annotations

import asyncio
import io
import time
import uuid

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from gateway.audit.s3 import ConditionalWritesUnsupported, S3Store, StoreUnavailable, probe_bodies
from gateway.audit.store import ConflictError, ObjectStore, StoreError, list_all, store_from_uri
from tests.audit.seaweed import SeaweedInfo
from tests.audit.store_contract import CHECKS

pytest_plugins = ["tests.audit.conftest_s3"]


def make_store(sw: SeaweedInfo, prefix: str | None = None, **options: object) -> S3Store:
    prefix = prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}"
    return S3Store.from_uri(f"s3://{sw.bucket}/{prefix}", endpoint_url=sw.endpoint, region=sw.region,
                            access_key=sw.access_key, secret_key=sw.secret_key, **options)


@pytest.fixture
async def store(seaweed: SeaweedInfo):
    s = make_store(seaweed)
    yield s
    await s.close()


# -- against SeaweedFS ---------------------------------------------------------------------------------------------
async def test_is_an_object_store(store: S3Store) -> None:
    assert isinstance(store, ObjectStore)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(store: S3Store, check) -> None:  # the same checks MemoryStore and FileStore pass
    await check(store)


async def test_put_get_roundtrip(store: S3Store) -> None:
    data = b'{"a":1}\n' + bytes(range(256))
    assert await store.get("streams/w1/records/1.json") is None
    assert await store.put_if_absent("streams/w1/records/1.json", data) is True
    assert await store.get("streams/w1/records/1.json") == data
    assert await store.put_if_absent("empty", b"") is True
    assert await store.get("empty") == b""


async def test_identical_reput_is_success_different_is_conflict(store: S3Store) -> None:
    assert await store.put_if_absent("k/1", b"original") is True
    assert await store.put_if_absent("k/1", b"original") is True
    with pytest.raises(ConflictError) as exc:
        await store.put_if_absent("k/1", b"tampered")
    assert exc.value.key == "k/1"
    assert not isinstance(exc.value, StoreUnavailable)
    assert await store.get("k/1") == b"original"


async def test_concurrent_writers_exactly_one_wins(store: S3Store) -> None:
    async def attempt(i: int) -> str:
        try:
            await store.put_if_absent("race/key", f"writer {i}".encode())
            return "won"
        except ConflictError:
            return "conflict"

    # SeaweedFS serialises conditional writes to one key with a lock that it retries in 1 s steps, so a crowd of
    # writers on one key is slow there (correct, just slow); a handful proves the point.
    results = await asyncio.gather(*(attempt(i) for i in range(5)))
    assert results.count("won") == 1, results
    winner = results.index("won")
    assert await store.get("race/key") == f"writer {winner}".encode()
    # the same bytes from many writers at once (a retried upload racing itself): all succeed
    assert all(await asyncio.gather(*(store.put_if_absent("race/same", b"same") for _ in range(5))))


async def test_list_prefix_start_after_limit(store: S3Store) -> None:
    keys = [f"streams/w1/records/{i:020d}.json" for i in range(1, 8)] + ["streams/w2/records/1.json", "top"]
    await asyncio.gather(*(store.put_if_absent(k, k.encode()) for k in keys))
    recs = sorted(k for k in keys if k.startswith("streams/w1/"))
    assert await store.list("streams/w1/records/") == recs
    assert await store.list("streams/w1/records/", limit=3) == recs[:3]
    assert await store.list("streams/w1/records/", start_after=recs[2], limit=2) == recs[3:5]
    assert await store.list("streams/w1/records/", start_after=recs[-1]) == []
    assert await store.list("streams/w1/records/", limit=0) == []
    assert await store.list("streams/w1/records/0000000000000000000") == recs[:7]  # a plain string prefix
    assert await store.list("streams/w") == sorted(keys[:-1])
    assert await store.list("") == sorted(keys)
    assert await store.list("nothing/") == []


async def test_list_pages_through_server_pages(seaweed: SeaweedInfo) -> None:
    s = make_store(seaweed, list_page_size=3)
    try:
        keys = [f"sessions/s1/{i:012d}-w1-{i:020d}" for i in range(1, 12)]
        await asyncio.gather(*(s.put_if_absent(k, b"h") for k in keys))
        assert await s.list("sessions/s1/") == keys
        assert await s.list("sessions/s1/", limit=7) == keys[:7]
        assert await s.list("sessions/s1/", start_after=keys[4], limit=5) == keys[5:10]
        assert await list_all(s, "sessions/", page=4) == keys
    finally:
        await s.close()


async def test_listing_order_across_directories_is_lossless(store: S3Store) -> None:
    # Directory names where one is a prefix of another followed by '-' or '.': byte order puts "a-1/x" before
    # "a/x", SeaweedFS lists directory by directory ("a/x" first). Either way paging by the last key must return
    # every key exactly once.
    keys = ["s/a/1", "s/a-1/1", "s/a.x/1", "s/a0/1", "s/a-", "s/ab", "s/a/b/c", "s/a=b/1", "s/b-2/9", "s/b/9"]
    await asyncio.gather(*(store.put_if_absent(k, b"x") for k in keys))
    got = await list_all(store, "s/", page=2)
    assert sorted(got) == sorted(keys) and len(got) == len(set(got))
    byte_order = sorted(keys)
    segment_order = sorted(keys, key=lambda k: k.split("/"))  # SeaweedFS (4.x)
    assert got in (byte_order, segment_order), got


async def test_store_prefixes_are_isolated(seaweed: SeaweedInfo) -> None:
    base = f"iso-{uuid.uuid4().hex[:8]}"
    a, ab = make_store(seaweed, base), make_store(seaweed, base + "-b")
    nested = make_store(seaweed, base + "/deep/er")
    try:
        await a.put_if_absent("k", b"a")
        await ab.put_if_absent("k", b"ab")
        await nested.put_if_absent("k", b"n")
        assert await a.list("") == ["deep/er/k", "k"] or await a.list("") == ["k", "deep/er/k"]
        assert await ab.list("") == ["k"]
        assert await nested.list("") == ["k"]
        assert await a.get("deep/er/k") == b"n"
    finally:
        for s in (a, ab, nested):
            await s.close()


async def test_key_that_is_a_directory_of_others_is_a_clear_error(store: S3Store) -> None:
    # SeaweedFS refuses a conditional create of "d" (412) once "d/1" exists, yet has no object "d": the store
    # must say so instead of retrying forever or calling it a conflict. (The layout never nests keys like this;
    # on AWS S3 the put simply succeeds.)
    await store.put_if_absent("d/1", b"1")
    try:
        assert await store.put_if_absent("d", b"d") is True
    except StoreError as exc:
        assert not isinstance(exc, (ConflictError, StoreUnavailable))
        assert "412" in str(exc)


async def test_probe_conditional_writes_passes_on_seaweedfs(seaweed: SeaweedInfo, store: S3Store) -> None:
    await store.probe_conditional_writes()
    # the probe cleaned up after itself, and never shows in listings anyway
    raw = seaweed.client().list_objects_v2(Bucket=seaweed.bucket, Prefix=f"{store.prefix}/")
    assert raw.get("KeyCount", 0) == 0, raw.get("Contents")
    assert await store.list("") == []


async def test_seaweedfs_answers_412_to_if_none_match(seaweed: SeaweedInfo) -> None:
    # The raw evidence behind the probe: a second conditional PUT to an existing key is refused with 412.
    from botocore.exceptions import ClientError

    c, key = seaweed.client(), f"raw-{uuid.uuid4().hex}"
    c.put_object(Bucket=seaweed.bucket, Key=key, Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        c.put_object(Bucket=seaweed.bucket, Key=key, Body=b"two", IfNoneMatch="*")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert exc.value.response["Error"]["Code"] == "PreconditionFailed"
    assert c.get_object(Bucket=seaweed.bucket, Key=key)["Body"].read() == b"one"


async def test_wrong_credentials_are_a_store_error_not_unavailable(seaweed: SeaweedInfo) -> None:
    s = S3Store.from_uri(f"s3://{seaweed.bucket}/x", endpoint_url=seaweed.endpoint, region=seaweed.region,
                         access_key=seaweed.access_key, secret_key="wrong-secret")
    try:
        with pytest.raises(StoreError) as exc:
            await s.put_if_absent("k", b"v")
        assert not isinstance(exc.value, (StoreUnavailable, ConflictError))
        assert "403" in str(exc.value) and "wrong-secret" not in str(exc.value)
    finally:
        await s.close()


async def test_unavailable_while_stopped_then_works_after_restart(seaweed: SeaweedInfo) -> None:
    s = make_store(seaweed, connect_timeout=1, read_timeout=3, max_attempts=1)
    try:
        assert await s.put_if_absent("before", b"kept") is True
        seaweed.stop()
        try:
            t0 = time.monotonic()
            for call in (s.get("before"), s.put_if_absent("during", b"x"), s.list(""),
                         s.probe_conditional_writes()):
                with pytest.raises(StoreUnavailable):
                    await call
            assert time.monotonic() - t0 < 20
        finally:
            seaweed.start()
        assert await s.get("before") == b"kept"
        assert await s.get("during") is None
        assert await s.put_if_absent("during", b"x") is True
        assert await s.list("") == ["before", "during"]
        await s.probe_conditional_writes()
    finally:
        await s.close()


async def test_store_from_uri_builds_s3_store(seaweed: SeaweedInfo) -> None:
    s = store_from_uri(f"s3://{seaweed.bucket}/via-uri", endpoint_url=seaweed.endpoint, region=seaweed.region,
                       access_key=seaweed.access_key, secret_key=seaweed.secret_key)
    try:
        assert isinstance(s, S3Store) and s.prefix == "via-uri"
        await s.probe_conditional_writes()
    finally:
        await s.close()


async def test_closed_store_refuses_calls(seaweed: SeaweedInfo) -> None:
    s = make_store(seaweed)
    await s.close()
    await s.close()  # idempotent
    with pytest.raises(StoreError):
        await s.get("k")


# -- unit: URI parsing -----------------------------------------------------------------------------------------
def test_from_uri_parses_bucket_and_prefix() -> None:
    s = S3Store.from_uri("s3://my-bucket/audit/prod/", endpoint_url="http://127.0.0.1:1", region="us-east-1",
                         access_key="a", secret_key="b")
    assert (s.bucket, s.prefix) == ("my-bucket", "audit/prod")
    assert s.location == "s3://my-bucket/audit/prod at http://127.0.0.1:1"
    assert "b" not in repr(s).replace("my-bucket", "").replace("http", "")
    assert S3Store.from_uri("s3://bkt", region="us-east-1", access_key="a", secret_key="b").prefix == ""
    for bad in ("s3://", "file:///x", "s3://bkt/a?x=1", "s3://bkt/a//b"):
        with pytest.raises(ValueError):
            S3Store.from_uri(bad, region="us-east-1", access_key="a", secret_key="b")
    with pytest.raises(ValueError):
        S3Store.from_uri("s3://bkt/p", region="us-east-1", access_key="only-half")


async def test_bad_keys_are_rejected_before_any_request() -> None:
    s, _ = stubbed()
    with pytest.raises(ValueError):
        await s.get("../etc")
    with pytest.raises(ValueError):
        await s.put_if_absent("a//b", b"")
    with pytest.raises(ValueError):
        await s.list("/abs")


# -- unit: botocore Stubber --------------------------------------------------------------------------------------
def stubbed(prefix: str = "p") -> tuple[S3Store, Stubber]:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url="http://s3.test:9000",
                          aws_access_key_id="a", aws_secret_access_key="b")
    stub = Stubber(client)
    stub.activate()
    return S3Store("bkt", prefix, endpoint_url="http://s3.test:9000", client=client, max_workers=1), stub


def body(data: bytes) -> dict[str, object]:
    return {"Body": StreamingBody(io.BytesIO(data), len(data))}


def put_params(key: str, data: object = ANY) -> dict[str, object]:
    return {"Bucket": "bkt", "Key": key, "Body": data, "IfNoneMatch": "*"}


async def test_stub_412_identical_is_success() -> None:
    s, stub = stubbed()
    stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412,
                          expected_params=put_params("p/k", b"v"))
    stub.add_response("get_object", body(b"v"), {"Bucket": "bkt", "Key": "p/k"})
    assert await s.put_if_absent("k", b"v") is True
    stub.assert_no_pending_responses()


async def test_stub_412_different_is_conflict() -> None:
    s, stub = stubbed()
    stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412,
                          expected_params=put_params("p/k", b"v"))
    stub.add_response("get_object", body(b"other"), {"Bucket": "bkt", "Key": "p/k"})
    with pytest.raises(ConflictError):
        await s.put_if_absent("k", b"v")
    stub.assert_no_pending_responses()


async def test_stub_409_conditional_request_conflict_is_retried() -> None:
    s, stub = stubbed()
    stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409,
                          expected_params=put_params("p/k", b"v"))
    stub.add_response("put_object", {}, put_params("p/k", b"v"))
    assert await s.put_if_absent("k", b"v") is True
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(("status", "code", "unavailable"), [
    (503, "SlowDown", True), (500, "InternalError", True), (429, "TooManyRequests", True),
    (403, "AccessDenied", False), (404, "NoSuchBucket", False),
])
async def test_stub_error_classes(status: int, code: str, unavailable: bool) -> None:
    s, stub = stubbed()
    stub.add_client_error("put_object", code, http_status_code=status)
    with pytest.raises(StoreError) as exc:
        await s.put_if_absent("k", b"v")
    assert isinstance(exc.value, StoreUnavailable) is unavailable
    assert not isinstance(exc.value, ConflictError)
    stub.add_client_error("get_object", code, http_status_code=status)
    with pytest.raises(StoreError) as exc:
        await s.get("k")
    assert isinstance(exc.value, StoreUnavailable) is unavailable


async def test_stub_get_missing_is_none_and_list_strips_prefix_and_hides_probes() -> None:
    s, stub = stubbed()
    stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
    assert await s.get("k") is None
    stub.add_response("list_objects_v2", {
        "Contents": [{"Key": "p/.probe/x"}, {"Key": "p/a"}, {"Key": "p/b"}], "IsTruncated": True,
        "NextContinuationToken": "t1"}, {"Bucket": "bkt", "Prefix": "p/", "StartAfter": "p/0", "MaxKeys": 3})
    stub.add_response("list_objects_v2", {"Contents": [{"Key": "p/c"}, {"Key": "p/d"}], "IsTruncated": True},
                      {"Bucket": "bkt", "Prefix": "p/", "StartAfter": "p/0", "MaxKeys": 1,
                       "ContinuationToken": "t1"})
    assert await s.list("", start_after="0", limit=3) == ["a", "b", "c"]
    stub.assert_no_pending_responses()


async def test_stub_probe_passes_when_second_write_gets_412() -> None:
    s, stub = stubbed()
    key = "p/.probe/conditional-write-tok"
    first, second = probe_bodies(".probe/conditional-write-tok")
    stub.add_response("put_object", {}, put_params(key, first))
    stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412,
                          expected_params=put_params(key, second))
    stub.add_response("get_object", body(first), {"Bucket": "bkt", "Key": key})  # the first bytes survived
    stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412,
                          expected_params=put_params(key, first))  # identical re-put...
    stub.add_response("get_object", body(first), {"Bucket": "bkt", "Key": key})  # ...counts as success
    stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": key})
    await s.probe_conditional_writes(token="tok")
    stub.assert_no_pending_responses()


async def test_stub_probe_fails_when_412_but_object_was_overwritten() -> None:
    s, stub = stubbed()
    key = "p/.probe/conditional-write-tok"
    first, second = probe_bodies(".probe/conditional-write-tok")
    stub.add_response("put_object", {}, put_params(key, first))
    stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412,
                          expected_params=put_params(key, second))
    stub.add_response("get_object", body(second), {"Bucket": "bkt", "Key": key})
    stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": key})
    with pytest.raises(ConditionalWritesUnsupported, match="no longer"):
        await s.probe_conditional_writes(token="tok")
    stub.assert_no_pending_responses()


async def test_stub_probe_fails_when_store_ignores_the_condition() -> None:
    s, stub = stubbed()
    stub.add_response("put_object", {}, put_params(ANY))
    stub.add_response("put_object", {}, put_params(ANY))  # the second conditional write "succeeds"
    stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": ANY})
    with pytest.raises(ConditionalWritesUnsupported) as exc:
        await s.probe_conditional_writes()
    msg = str(exc.value)
    assert "http://s3.test:9000" in msg and "If-None-Match" in msg and "s3://bkt/p" in msg
    stub.assert_no_pending_responses()  # and the probe object was deleted


async def test_stub_probe_fails_when_condition_is_not_implemented() -> None:
    s, stub = stubbed()
    stub.add_client_error("put_object", "NotImplemented", http_status_code=501, expected_params=put_params(ANY))
    with pytest.raises(ConditionalWritesUnsupported, match="501 NotImplemented"):
        await s.probe_conditional_writes()
