"""The fingerprint binds an approval to one request: principal, method, path with query, canonical body."""
from __future__ import annotations

import pytest

from gateway.approvals.fingerprint import BODY_SHA256, body_sha256, exchange_fingerprint, fingerprint
from gateway.exchange import Exchange
from gateway.principal import Principal

BODY = b'{"model": "r1", "messages": [{"role": "user", "content": "CUST-00012345"}], "temperature": 0.7}'


def ex(body: bytes = BODY, sub: str = "alice", method: str = "POST", path: str = "/v1/chat/completions",
       query: str = "") -> Exchange:
    return Exchange(method=method, path=path, query_string=query, body=body, principal=Principal(sub, ("eng",)))


def test_json_key_order_and_whitespace_do_not_matter():
    reordered = b'{"temperature":0.7,\n "messages":[{"content":"CUST-00012345","role":"user"}],"model":"r1"}'
    assert body_sha256(BODY) == body_sha256(reordered)


@pytest.mark.parametrize("other", [
    b'{"model": "r1", "messages": [{"role": "user", "content": "CUST-00099999"}], "temperature": 0.7}',
    b'{"model": "r1", "messages": [{"role": "user", "content": "CUST-00012345"}], "temperature": 0.8}',
    b'{"model": "r1", "messages": [{"role": "user", "content": "CUST-00012345"}]}',
])
def test_a_different_body_is_a_different_request(other):
    assert body_sha256(BODY) != body_sha256(other)


@pytest.mark.parametrize("a, b", [
    (b'{"x": NaN}', b'{"x": null}'),            # a lax encoder would write NaN as null
    (b'{"x": 1e400}', b'{"x": null}'),          # so would it an overflowing number
    (b'{"x": 1, "x": 2}', b'{"x": 2}'),         # an upstream may read the first of repeated keys
    (b"plain text", b"plain  text"),             # not JSON: raw bytes
])
def test_bodies_without_one_exact_json_reading_fall_back_to_raw_bytes(a, b):
    assert body_sha256(a) != body_sha256(b)


async def test_principal_method_path_and_query_all_take_part():
    base = await exchange_fingerprint(ex())
    assert base == await exchange_fingerprint(ex())
    for other in (ex(sub="bob"), ex(method="PUT"), ex(path="/v1/responses"), ex(query="stream=true"),
                  ex(path="/v1/chat/completions?stream=true")):
        assert await exchange_fingerprint(other) != base
    assert await exchange_fingerprint(ex(query="a=1")) == await exchange_fingerprint(ex(path="/v1/chat/completions?a=1"))


async def test_the_hash_of_the_body_as_received_wins_over_a_masked_body():
    received = ex()
    received.annotations[BODY_SHA256] = body_sha256(BODY)
    received.body = BODY.replace(b"CUST-00012345", b"[CUSTOMER_ID]")  # what the policy filter forwards
    assert await exchange_fingerprint(received) == await exchange_fingerprint(ex())


def test_fingerprint_is_sha256_hex_and_refuses_no_principal():
    assert len(fingerprint("a", "post", "/x", body_sha256(b""))) == 64
    assert fingerprint("a", "post", "/x", "h") == fingerprint("a", "POST", "/x", "h")


async def test_exchange_without_principal_is_refused():
    with pytest.raises(ValueError):
        await exchange_fingerprint(Exchange(method="POST", path="/v1/chat/completions", body=b"{}"))
