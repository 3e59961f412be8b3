"""The admin API reads the bearer token under exactly the proxy's rules (`gateway.filters.auth.AuthFilter`)."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.admin.bearer import bearer_token
from gateway.auth.errors import AuthError
from gateway.exchange import Exchange
from gateway.filters.auth import AuthFilter
from gateway.filters.base import Respond
from gateway.principal import Principal


class AnyToken:
    async def verify(self, token: str) -> Principal:
        return Principal(sub=token)


@pytest.mark.parametrize("values", [
    (), ("Bearer a.b.c",), ("bearer   a.b.c  ",), ("Bearer a.b.c", "Bearer a.b.c"), ("Basic YTpi",), ("Bearer",),
    ("Bearer a b",), ("",), ("Token a.b.c",),
])
async def test_same_verdict_as_the_auth_filter(values):
    headers = CIMultiDict([("Authorization", v) for v in values])
    ex = Exchange("GET", "/v1/models", request_headers=headers)
    verdict = await AuthFilter(AnyToken()).on_request(ex)
    try:
        token = bearer_token(CIMultiDictProxy(headers))
    except AuthError as err:
        assert isinstance(verdict, Respond)
        filt = verdict.error
        assert (err.reason, err.message, err.headers) == (filt.reason, filt.message, filt.headers)
    else:
        assert not isinstance(verdict, Respond) and ex.principal == Principal(sub=token)
