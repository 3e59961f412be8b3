"""Header hygiene on both hops, observed from the backend (`/_test/echo`) and from the client."""
from __future__ import annotations

import json

from yarl import URL

from tests.e2e.helpers import HEX_ID, raw_http, request_bytes


async def _echo(http, gateway, headers, target="/_test/echo", **kw) -> tuple[dict, object]:
    async with http.get(URL(gateway + target, encoded=True), headers=headers, **kw) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json(), resp


def _names(seen: dict) -> list[str]:
    return [name.lower() for name, _ in seen["raw_headers"]]


async def test_connection_named_and_hop_by_hop_request_headers_are_dropped(gateway, auth):
    # Raw bytes, so nothing on the client side rewrites the Connection header.
    data = request_bytes("GET", "/_test/echo", [
        ("Host", "gw.example"), ("Authorization", auth["Authorization"]),
        ("Connection", "close, x-secret"), ("X-Secret", "v"),
        ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy-Authorization", "Basic cHJveHk6cHc="),
        ("Proxy-Connection", "keep-alive"), ("X-Kept", "yes"),
    ])
    result = await raw_http(gateway, data)
    assert [r.status for r in result.responses] == [200]
    seen = result.responses[0].json()
    names = _names(seen)
    assert "x-secret" not in names
    for hop in ("keep-alive", "te", "proxy-authorization", "proxy-connection"):
        assert hop not in names, hop
    assert "x-secret" not in seen["headers"].get("connection", "")
    assert seen["headers"]["x-kept"] == "yes"  # the control: ordinary headers do pass


async def test_authorization_is_not_forwarded(gateway, http, auth, token):
    seen, _ = await _echo(http, gateway, auth)
    assert "authorization" not in _names(seen)
    assert token not in json.dumps(seen)


async def test_forwarding_headers_set_and_spoofs_replaced(gateway, http, auth):
    spoofs = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
              "Forwarded": "for=6.6.6.6;proto=https", "X-Real-IP": "6.6.6.6"}
    seen, _ = await _echo(http, gateway, {**auth, **spoofs})
    names = _names(seen)
    assert names.count("x-forwarded-for") == 1 and seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert names.count("x-forwarded-proto") == 1 and seen["headers"]["x-forwarded-proto"] == "http"
    assert names.count("x-forwarded-host") == 1
    assert seen["headers"]["x-forwarded-host"] == URL(gateway).raw_authority
    assert "forwarded" not in names and "x-real-ip" not in names
    assert "6.6.6.6" not in json.dumps(seen) and "evil.example" not in json.dumps(seen)


async def test_forwarding_headers_present_without_spoofs(gateway, http, auth):
    seen, _ = await _echo(http, gateway, {**auth, "Host": "api.example.test"})
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-host"] == "api.example.test"
    assert seen["headers"]["x-forwarded-proto"] == "http"


async def test_identity_encoding_requested_upstream(gateway, http, auth):
    seen, _ = await _echo(http, gateway, {**auth, "Accept-Encoding": "gzip, br, zstd"})
    assert _names(seen).count("accept-encoding") == 1
    assert seen["headers"]["accept-encoding"] == "identity"


async def test_client_cannot_send_gateway_headers_upstream(gateway, http, auth):
    seen, _ = await _echo(http, gateway, {**auth, "X-Gateway-Principal": "admin", "X-Gateway-Request-Id": "x"})
    assert not [n for n in _names(seen) if n.startswith("x-gateway-")]


async def test_hop_by_hop_response_headers_not_passed_back(gateway, http, auth):
    respond = ["Keep-Alive: timeout=99", "Connection: x-hop", "X-Hop: secret", "Upgrade: h2c",
               "Proxy-Authenticate: Basic", "Trailer: X-Checksum", "X-Gateway-Request-Id: spoofed",
               "X-Gateway-Session-Id: spoofed", "X-Passed: yes"]
    query = "&".join(f"respond_header={value.replace(' ', '%20')}" for value in respond)
    async with http.get(URL(f"{gateway}/_test/echo?{query}", encoded=True), headers=auth) as resp:
        assert resp.status == 200
        raw = [(k.decode().lower(), v.decode()) for k, v in resp.raw_headers]
        await resp.read()
    names = [k for k, _ in raw]
    for hop in ("keep-alive", "x-hop", "upgrade", "proxy-authenticate", "trailer"):
        assert hop not in names, hop
    assert "x-hop" not in " ".join(v for k, v in raw if k == "connection")
    assert ("x-passed", "yes") in raw
    assert names.count("x-gateway-request-id") == 1 and names.count("x-gateway-session-id") == 1
    assert HEX_ID.match(dict(raw)["x-gateway-request-id"])
    assert dict(raw)["x-gateway-session-id"] != "spoofed"


async def test_path_query_and_body_forwarded_unchanged(gateway, http, auth):
    target = "/_test/echo/a%20b/%C3%A9/c;v=1?x=1&y=%2F&y=two&empty="
    body = bytes(range(256)) * 4
    async with http.post(URL(gateway + target, encoded=True), headers=auth, data=body) as resp:
        assert resp.status == 200
        seen = await resp.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/_test/echo/a%20b/%C3%A9/c;v=1"
    assert seen["query"] == "x=1&y=%2F&y=two&empty="
    assert seen["body_length"] == len(body)


async def test_chunked_request_body_reaches_upstream_whole(gateway, http, auth):
    async def parts():
        for i in range(5):
            yield f"part-{i};".encode()

    async with http.post(gateway + "/_test/echo", headers=auth, data=parts()) as resp:
        assert resp.status == 200
        seen = await resp.json()
    assert seen["body"] == "part-0;part-1;part-2;part-3;part-4;"


async def test_expect_continue_is_answered_here_not_forwarded(gateway, http, auth):
    """The gateway has the whole body before it forwards; an upstream `Expect: 100-continue` would make the
    request wait for a `100 Continue` that backends ignoring Expect never send."""
    body = b"z" * 3000
    async with http.post(gateway + "/_test/echo", headers=auth, data=body, expect100=True) as resp:
        assert resp.status == 200
        seen = await resp.json()
    assert "expect" not in _names(seen)
    assert seen["body_length"] == len(body)
