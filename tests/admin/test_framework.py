"""The admin frame: 401 / 403 / roles, the audit record written before every call, failing closed."""
from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from gateway.admin import INVESTIGATOR_ENDPOINTS, AdminCall, Role, endpoint, json_reply, roles_for
from gateway.auth.errors import auth_unavailable
from gateway.principal import Principal
from tests.admin.conftest import ADMIN, APPROVER, INVESTIGATOR, NOBODY, SETTINGS

# every investigator endpoint, with a path that answers 200 on the test log
CALLS = [
    ("/admin/sessions", "sessions.list"),
    ("/admin/sessions/s-alpha", "sessions.show"),
    ("/admin/sessions/s-alpha/replay?speed=0", "sessions.replay"),
    ("/admin/sessions/s-alpha/verify", "sessions.verify"),
    ("/admin/sessions/s-alpha/export", "sessions.export"),
    ("/admin/audit/verify", "audit.verify"),
    ("/admin/audit/digest", "audit.digest"),
]


def test_every_endpoint_is_covered():
    assert sorted(a for _, a in CALLS) == sorted(ep.action for ep in INVESTIGATOR_ENDPOINTS)


def test_roles_from_groups():
    def roles(*groups):
        return roles_for(Principal(sub="x", groups=groups), SETTINGS)

    assert roles("eng") == frozenset()
    assert roles("investigators") == {Role.INVESTIGATOR}
    assert roles("approvers", "investigators") == {Role.APPROVER, Role.INVESTIGATOR}
    assert roles("gateway-admins") == set(Role)


async def test_missing_token_is_401_and_not_audited(client, recorder):
    resp = await client.get("/admin/sessions")
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "invalid_token" and body["error"]["type"] == "authentication_error"
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
    assert recorder.calls == []


@pytest.mark.parametrize("headers,challenge", [
    ({"Authorization": "Bearer not-a-known-token"}, 'error="invalid_token"'),
    ({"Authorization": "Basic YTpi"}, None),
    ({"Authorization": "Bearer tok-admin extra"}, 'error="invalid_request"'),
])
async def test_bad_credentials_are_401(client, recorder, headers, challenge):
    resp = await client.get("/admin/sessions", headers=headers)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_token"
    if challenge:
        assert challenge in resp.headers["WWW-Authenticate"]
    else:
        assert "error=" not in resp.headers["WWW-Authenticate"]
    assert recorder.calls == []


async def test_two_authorization_headers_are_refused(client, verifier, recorder):
    resp = await client.get("/admin/sessions", headers=[("Authorization", "Bearer tok-admin"),
                                                        ("Authorization", "Bearer tok-admin")])
    assert resp.status == 401 and 'error="invalid_request"' in resp.headers["WWW-Authenticate"]
    assert verifier.tokens == [] and recorder.calls == []


async def test_idp_keys_not_loaded_is_503(client, verifier):
    verifier.error = auth_unavailable()
    resp = await client.get("/admin/sessions", headers=ADMIN)
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "auth_unavailable"


@pytest.mark.parametrize("headers,sub", [(APPROVER, "apu"), (NOBODY, "nob")])
@pytest.mark.parametrize("path,action", CALLS)
async def test_wrong_group_is_403_and_audited(client, recorder, log, headers, sub, path, action):
    reads = log.store.reads
    resp = await client.get(path, headers=headers)
    assert resp.status == 403
    err = (await resp.json())["error"]
    assert err["code"] == "forbidden" and err["type"] == "permission_error" and "investigator" in err["message"]
    assert [(s, a, d["outcome"]) for s, a, d in recorder.calls] == [(sub, action, "forbidden")]
    assert log.store.reads == reads  # nothing was read for a refused caller


@pytest.mark.parametrize("headers,sub", [(INVESTIGATOR, "ivy"), (ADMIN, "ada")])
@pytest.mark.parametrize("path,action", CALLS)
async def test_investigator_and_admin_may_call_and_are_audited(client, recorder, headers, sub, path, action):
    resp = await client.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    await resp.read()
    assert resp.headers["Cache-Control"] == "no-store"
    assert [(s, a) for s, a, _ in recorder.calls] == [(sub, action)]
    detail = recorder.calls[0][2]
    assert detail["outcome"] == "allowed" and detail["role"] == "investigator"


async def test_audit_detail_names_the_target_and_is_bounded(client, recorder):
    resp = await client.get("/admin/sessions/bob@corp:7/replay", params={"speed": "0", "format": "text"},
                            headers=INVESTIGATOR)
    assert resp.status == 200
    assert recorder.calls[0][2]["params"] == {"id": "bob@corp:7", "speed": "0", "format": "text"}
    await client.get("/admin/sessions", params={"subject": "x" * 5000}, headers=INVESTIGATOR)
    assert len(recorder.calls[1][2]["params"]["subject"]) <= 257


async def test_refused_and_invalid_calls_are_audited_too(client, recorder):
    assert (await client.get("/admin/sessions/a%20b", headers=INVESTIGATOR)).status == 400
    assert (await client.get("/admin/sessions?limit=0", headers=INVESTIGATOR)).status == 400
    assert [a for _, a, _ in recorder.calls] == ["sessions.show", "sessions.list"]
    assert recorder.calls[0][2]["params"] == {"id": "a b"}


@pytest.mark.parametrize("path,action", CALLS)
@pytest.mark.parametrize("headers", [INVESTIGATOR, NOBODY])
async def test_audit_failure_fails_closed(client, recorder, log, path, action, headers):
    recorder.fail = True
    reads = log.store.reads
    resp = await client.get(path, headers=headers)
    assert resp.status == 503
    body = await resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == "audit_unavailable"
    assert resp.headers["Retry-After"] == "5"
    assert log.store.reads == reads  # the action was not performed


@pytest.mark.parametrize("path,action", CALLS)
async def test_audit_disabled_is_503(make_client, make_ctx, recorder, path, action):
    client = await make_client(make_ctx(None))
    resp = await client.get(path, headers=INVESTIGATOR)
    assert resp.status == 503
    err = (await resp.json())["error"]
    assert err["code"] == "audit_unavailable" and "disabled" in err["message"]
    assert [a for _, a, _ in recorder.calls] == [action]


# -- the frame, reused by later endpoint groups -------------------------------------------------------------------
@endpoint("POST", "/admin/things/{id}", action="things.poke", role=Role.APPROVER)
async def poke(request: web.Request, call: AdminCall) -> web.StreamResponse:
    if request.match_info["id"] == "boom":
        raise RuntimeError("secret payload text")
    if request.match_info["id"] == "midway":
        resp = await call.stream(request, "text/plain")
        await resp.write(b"partial ")
        raise RuntimeError("store went away")
    return json_reply({"id": request.match_info["id"], "by": call.principal.sub,
                       "roles": sorted(call.roles)}, status=201)


async def test_custom_endpoint_roles(make_client, make_ctx, recorder):
    client = await make_client(make_ctx(None), [poke])
    resp = await client.post("/admin/things/t1", headers=APPROVER)
    assert resp.status == 201 and await resp.json() == {"id": "t1", "by": "apu", "roles": ["approver"]}
    resp = await client.post("/admin/things/t1", headers=ADMIN)
    assert resp.status == 201 and (await resp.json())["roles"] == ["admin", "approver", "investigator"]
    resp = await client.post("/admin/things/t1", headers=INVESTIGATOR)
    assert resp.status == 403 and "approver" in (await resp.json())["error"]["message"]
    assert [(s, a, d["outcome"]) for s, a, d in recorder.calls] == [
        ("apu", "things.poke", "allowed"), ("ada", "things.poke", "allowed"), ("ivy", "things.poke", "forbidden")]


async def test_handler_crash_is_a_bare_500(make_client, make_ctx):
    client = await make_client(make_ctx(None), [poke])
    resp = await client.post("/admin/things/boom", headers=APPROVER)
    assert resp.status == 500
    text = await resp.text()
    assert "internal_error" in text and "secret" not in text


async def test_failure_after_streaming_started_aborts_the_connection(make_client, make_ctx):
    """A truncated replay must not look complete: the client sees a broken body, not a clean end."""
    client = await make_client(make_ctx(None), [poke])
    resp = await client.post("/admin/things/midway", headers=APPROVER)
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
