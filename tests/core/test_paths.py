import pytest

from gateway.errors import GatewayError
from gateway.paths import check_proxy_path, check_session_id, is_reserved


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/v1/files/abc%20def", "/administrator-x"])
def test_ordinary_paths_pass(path):
    check_proxy_path(path)


@pytest.mark.parametrize(
    "path",
    ["//admin", "//admin/approvals", "/%61dmin", "/%61dmin/approvals", "/v1/../admin", "/v1/%2e%2e/admin",
     "/v1/%2fadmin", "/v1\\admin", "/ADMIN/x", "/./healthz", "/%2561dmin", "//metrics", "v1/x", "*"],
)
def test_ambiguous_or_reserved_lookalikes_are_refused(path):
    with pytest.raises(GatewayError) as err:
        check_proxy_path(path)
    assert err.value.status == 400


def test_reserved_exact_paths():
    assert is_reserved("/admin") and is_reserved("/admin/approvals") and is_reserved("/metrics")
    assert not is_reserved("/administrator") and not is_reserved("/v1/admin")


@pytest.mark.parametrize("value,ok", [("abc-123", True), ("s:1.2@x_y", True), ("", False), ("a b", False),
                                      ("x" * 129, False), ("é", False), ("a\r\nb", False)])
def test_session_id_format(value, ok):
    if ok:
        check_session_id(value)
    else:
        with pytest.raises(GatewayError):
            check_session_id(value)
