"""Investigator endpoints that read sessions: list, show, replay.

Records are read from the audit store as written (redacted only: the log never held anything else). A record
whose hash does not check out is still shown, and named in `problems` (replay: at the end of the stream), so an
investigator sees both the content and the fact that it was altered; `/verify` gives the full analysis.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from gateway.admin import params
from gateway.admin.catalog import find_sessions
from gateway.admin.context import Role
from gateway.admin.errors import invalid_param, session_not_found
from gateway.admin.framework import AdminCall, AdminEndpoint, endpoint, json_reply
from gateway.audit.replay import FORMATS, SessionNotFound, iter_records, render

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 500
MAX_SPEED = 100.0
FLUSH_BYTES = 64 * 1024
CONTENT_TYPES = {"sse": "text/event-stream", "json": "application/x-ndjson", "text": "text/plain; charset=utf-8"}


@endpoint("GET", "/admin/sessions", action="sessions.list", role=Role.INVESTIGATOR)
async def list_sessions(request: web.Request, call: AdminCall) -> web.StreamResponse:
    """`?subject=&since=&until=&limit=&cursor=` → ``{"sessions": [...], "next": cursor | null}``, oldest first.
    `since` is inclusive, `until` exclusive (RFC 3339 with a zone, or unix seconds). An unreadable catalog object
    is one item with `id` null, its `catalog_key` and a `problem` (see `gateway.admin.catalog`)."""
    q = request.query
    params.check_query(q, ("subject", "since", "until", "limit", "cursor"))
    since = params.catalog_time(q["since"], "since") if "since" in q else None
    until = params.catalog_time(q["until"], "until", round_up=True) if "until" in q else None
    if since and until and since > until:
        raise invalid_param("until", "until must not be earlier than since.")
    limit = params.int_in(q.get("limit"), "limit", default=LIST_LIMIT_DEFAULT, lo=1, hi=LIST_LIMIT_MAX)
    after = params.decode_cursor(q["cursor"]) if "cursor" in q else None
    page = await find_sessions(call.store, limit=limit, since=since, until=until, subject=q.get("subject") or None,
                               after=after)
    cursor = params.encode_cursor(page.last) if page.last else None
    return json_reply({"sessions": page.sessions, "next": cursor})


@endpoint("GET", "/admin/sessions/{id}", action="sessions.show", role=Role.INVESTIGATOR)
async def show_session(request: web.Request, call: AdminCall) -> web.StreamResponse:
    """``{"id", "records": [...] (session order), "problems": ["INVALID: ..."]}``, streamed record by record so a
    long session never sits in memory whole."""
    params.check_query(request.query, ())
    session = params.session_id(request.match_info["id"])
    problems: list[str] = []
    records = iter_records(call.store, session, on_problem=problems.append)
    try:
        first = await anext(records, None)
        if first is None and not problems:
            raise session_not_found(session)
        resp = await call.stream(request, "application/json")
        buf = bytearray(b'{"id":' + orjson.dumps(session) + b',"records":[')
        rec = first
        while rec is not None:
            buf += orjson.dumps(rec.model_dump(mode="json"))
            rec = await anext(records, None)
            if rec is not None:
                buf += b","
            if len(buf) >= FLUSH_BYTES:
                await resp.write(bytes(buf))
                buf.clear()
        buf += b'],"problems":' + orjson.dumps([f"INVALID: {p}" for p in problems]) + b"}"
        await resp.write(bytes(buf))
        await resp.write_eof()
        return resp
    finally:
        await records.aclose()


def _trailer(fmt: str, problems: list[str]) -> bytes:
    """Problems found while replaying, after the replayed bytes, in a form the format's readers skip or show."""
    lines = [" ".join(f"INVALID: {p}".splitlines()) for p in problems]
    if fmt == "sse":  # comment lines: an EventSource ignores them, a person reading the stream sees them
        return ("".join(f": {line}\n" for line in lines) + "\n").encode()
    if fmt == "json":
        return b"".join(orjson.dumps({"type": "problem", "message": line}) + b"\n" for line in lines)
    return "".join(f"{line}\n" for line in lines).encode()


@endpoint("GET", "/admin/sessions/{id}/replay", action="sessions.replay", role=Role.INVESTIGATOR)
async def replay_session(request: web.Request, call: AdminCall) -> web.StreamResponse:
    """`?speed=1&format=sse|json|text`: the masked responses with their original chunking; in `sse` each chunk is
    written (and flushed) at its recorded offset divided by `speed` (`0`: no delays). See `gateway.audit.replay`."""
    q = request.query
    params.check_query(q, ("speed", "format"))
    session = params.session_id(request.match_info["id"])
    speed = params.float_in(q.get("speed"), "speed", default=1.0, lo=0.0, hi=MAX_SPEED)
    fmt = params.choice(q.get("format"), "format", default="sse", choices=FORMATS)
    problems: list[str] = []
    chunks = render(call.store, session, fmt=fmt, speed=speed, on_problem=problems.append)
    try:
        try:
            first: bytes | None = await anext(chunks)
        except SessionNotFound:
            if not problems:  # an index naming only missing records is evidence, not "not found"
                raise session_not_found(session) from None
            first = None
        except StopAsyncIteration:
            first = None
        headers = {"X-Accel-Buffering": "no"}  # a buffering reverse proxy in front would destroy the timing
        resp = await call.stream(request, CONTENT_TYPES[fmt], headers=headers)
        if first is not None:
            await resp.write(first)
            async for chunk in chunks:
                await resp.write(chunk)
        if problems:
            await resp.write(_trailer(fmt, problems))
        await resp.write_eof()
        return resp
    finally:
        await chunks.aclose()


ENDPOINTS: tuple[AdminEndpoint, ...] = (list_sessions, show_session, replay_session)
