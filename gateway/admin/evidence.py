"""Investigator endpoints about trust: verify a session or the whole log, export an evidence bundle, show digests.

They run the very code of the CLI (`gateway audit verify`, `gateway audit export`) with the gateway's own public
keys and, as anchors against a truncated tail, the latest digests this process signed (held in memory, outside the
store). The answers carry the CLI's lines, so what the API says and what `gateway audit verify` prints agree.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.admin import params
from gateway.admin.context import Role
from gateway.admin.errors import session_not_found
from gateway.admin.framework import AdminCall, AdminEndpoint, endpoint, json_reply
from gateway.audit import layout
from gateway.audit.bundle import collect, write_bundle
from gateway.audit.cli import verify_session
from gateway.audit.digest import key_id, public_key_pem
from gateway.audit.verify import VerifyResult, verify_store

BUNDLE_SOURCE = "gateway admin API"


def result_json(result: VerifyResult) -> dict[str, Any]:
    """`problems` + [`summary`] are exactly the lines `gateway audit verify` prints."""
    return {
        "ok": result.ok, "clean": result.clean, "summary": result.summary(),
        "problems": [str(p) for p in result.problems],
        "records": {"checked": result.checked, "valid": result.valid},
        "digests": {"checked": result.digests_checked, "valid": result.digests_valid},
    }


@endpoint("GET", "/admin/sessions/{id}/verify", action="sessions.verify", role=Role.INVESTIGATOR)
async def verify_one(request: web.Request, call: AdminCall) -> web.StreamResponse:
    """Verify one session as `gateway audit verify --session ID` does; 404 when the log has no trace of it."""
    params.check_query(request.query, ())
    session = params.session_id(request.match_info["id"])
    result = await verify_session(call.store, session, public_keys=call.ctx.public_keys,
                                  anchors=call.ctx.latest_digests())
    if [p.what for p in result.problems] == ["session_not_found"]:
        raise session_not_found(session)  # anything else found (e.g. a digest naming it) is evidence: shown
    return json_reply({"id": session, **result_json(result)})


@endpoint("GET", "/admin/audit/verify", action="audit.verify", role=Role.INVESTIGATOR)
async def verify_all(request: web.Request, call: AdminCall) -> web.StreamResponse:
    """Verify the whole store (reads every object: slow on a big log, by nature)."""
    params.check_query(request.query, ())
    result = await verify_store(call.store, public_keys=call.ctx.public_keys, anchors=call.ctx.latest_digests())
    return json_reply(result_json(result))


@endpoint("GET", "/admin/audit/digest", action="audit.digest", role=Role.INVESTIGATOR)
async def latest_digests(request: web.Request, call: AdminCall) -> web.StreamResponse:
    """The latest signed digest of each of this process's streams, unchanged (save `digests` as a JSON file and
    it is an anchor file for `gateway audit verify --anchors`), and the public keys to check them with."""
    params.check_query(request.query, ())
    call.store  # noqa: B018 - audit disabled: 503, like every other audit endpoint
    keys = [{"id": key_id(k), "pem": public_key_pem(k).decode("ascii")} for k in call.ctx.public_keys]
    return json_reply({"digests": list(call.ctx.latest_digests()), "public_keys": keys})


def _bundle_bytes(session: str, objects: dict[str, bytes], records: list[dict[str, Any]], streams: list[str],
                  keys: list[Ed25519PublicKey]) -> bytes:
    """`write_bundle` writes a file (atomically, for the CLI); here it goes to a private temp dir and is read back."""
    with tempfile.TemporaryDirectory(prefix="gateway-export-") as tmp:
        path = os.path.join(tmp, "bundle.tar")
        write_bundle(path, session, objects, records, streams, keys, source=BUNDLE_SOURCE)
        with open(path, "rb") as f:
            return f.read()


@endpoint("GET", "/admin/sessions/{id}/export", action="sessions.export", role=Role.INVESTIGATOR)
async def export_session(request: web.Request, call: AdminCall) -> web.StreamResponse:
    """The session's evidence bundle (the tar `gateway audit export` writes), checkable offline with
    `gateway audit verify --store <file>.tar`."""
    params.check_query(request.query, ())
    session = params.session_id(request.match_info["id"])
    objects, records, streams = await collect(call.store, session)
    prefix = layout.session_prefix(session)
    # pointers, even unreadable ones, are evidence: exported; so is a session known only by its catalog entry
    if not records and not any(key.startswith(prefix) for key in objects):
        raise session_not_found(session)
    data = await asyncio.to_thread(_bundle_bytes, session, objects, records, streams, list(call.ctx.public_keys))
    filename = f"session-{layout.encode_segment(session)}.tar"  # no `@`, `:` or quotes: safe on any filesystem
    return web.Response(body=data, content_type="application/x-tar",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


ENDPOINTS: tuple[AdminEndpoint, ...] = (verify_one, export_session, verify_all, latest_digests)
