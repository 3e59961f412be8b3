from multidict import CIMultiDict

from gateway.headers import client_response_headers, finish_upstream_headers, inbound_headers


def _up(headers, **kw):
    args = dict(client_ip="10.0.0.9", scheme="https", host="gw.example", forward_authorization=False,
                trust_forwarded=False, extra={})
    args.update(kw)
    inbound = inbound_headers(CIMultiDict(headers), trust_forwarded=args["trust_forwarded"])
    return finish_upstream_headers(inbound, **args)


def test_hop_by_hop_and_connection_named_headers_are_removed():
    out = _up([("Connection", "keep-alive, X-Secret"), ("X-Secret", "s3cr3t"), ("Keep-Alive", "timeout=5"),
               ("TE", "trailers"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
               ("Proxy-Authorization", "Basic x"), ("Content-Type", "application/json")])
    assert "X-Secret" not in out and "Connection" not in out and "Keep-Alive" not in out
    for name in ("TE", "Transfer-Encoding", "Upgrade", "Proxy-Authorization"):
        assert name not in out
    assert out["Content-Type"] == "application/json"


def test_authorization_is_not_forwarded_unless_configured():
    assert "Authorization" not in _up([("Authorization", "Bearer abc")])
    assert _up([("Authorization", "Bearer abc")], forward_authorization=True)["Authorization"] == "Bearer abc"


def test_forwarded_headers_are_replaced_unless_trusted():
    spoof = [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "evil"), ("Forwarded", "for=1.2.3.4")]
    out = _up(spoof)
    assert out["X-Forwarded-For"] == "10.0.0.9"
    assert out["X-Forwarded-Proto"] == "https" and out["X-Forwarded-Host"] == "gw.example"
    assert "Forwarded" not in out
    trusted = _up(spoof, trust_forwarded=True)
    assert trusted["X-Forwarded-For"] == "1.2.3.4, 10.0.0.9"


def test_gateway_headers_cannot_be_spoofed_and_identity_encoding_is_requested():
    out = _up([("X-Gateway-Request-Id", "forged"), ("Accept-Encoding", "gzip, br"), ("Host", "x"),
               ("Content-Length", "99")], extra={"X-Backend-Key": "k"})
    assert "X-Gateway-Request-Id" not in out and "Host" not in out and "Content-Length" not in out
    assert out["Accept-Encoding"] == "identity"
    assert out["X-Backend-Key"] == "k"


def test_response_headers_drop_hop_by_hop_and_length_when_rewritten():
    up = CIMultiDict([("Content-Length", "10"), ("Connection", "close, X-Internal"), ("X-Internal", "1"),
                      ("Content-Type", "text/event-stream"), ("X-Gateway-Session-Id", "forged")])
    kept = client_response_headers(up, body_rewritten=False)
    assert kept["Content-Length"] == "10" and "X-Internal" not in kept and "Connection" not in kept
    assert "X-Gateway-Session-Id" not in kept
    assert "Content-Length" not in client_response_headers(up, body_rewritten=True)
