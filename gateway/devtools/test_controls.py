"""`/_test/*` endpoints and request counters of the fake backend, mounted only with ``test_controls=True``.

They let end-to-end tests see the upstream side of the gateway: what reached the backend (echo, last), what
happens when the backend hangs (stall, stall_body), and whether a client disconnect propagated all the way to the
backend handler (the ``cancelled`` counter).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.devtools.openai_wire import sse


@dataclass
class Stats:
    started: int = 0
    """Requests that reached a handler (control endpoints excluded)."""
    completed: int = 0
    """Handlers that returned normally (streams: after the last frame was written)."""
    cancelled: int = 0
    """Handlers stopped because the client went away (CancelledError or ConnectionResetError)."""
    failed: int = 0
    """Handlers that raised anything else."""
    last: dict[str, Any] | None = field(default=None, repr=False)
    """`describe()` of the last counted request."""

    def reset(self) -> None:
        # In place: an application's state can't be rebound once it runs.
        self.started = self.completed = self.cancelled = self.failed = 0
        self.last = None

    def as_dict(self) -> dict[str, int]:
        in_flight = self.started - self.completed - self.cancelled - self.failed
        return {"started": self.started, "completed": self.completed, "cancelled": self.cancelled,
                "failed": self.failed, "in_flight": in_flight}


STATS = web.AppKey("devtools_stats", Stats)
_UNCOUNTED = frozenset({"/_test/stats", "/_test/last", "/_test/reset"})


async def describe(request: web.Request) -> dict[str, Any]:
    """Everything the backend received, as JSON: raw path/query as they came off the wire, headers, body."""
    body = await request.read()  # aiohttp caches it, so the handler can read it again
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return {
        "method": request.method,
        "path": request.rel_url.raw_path,
        "query": request.rel_url.raw_query_string,
        "headers": headers,
        "raw_headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "body": body.decode("utf-8", "replace"),
        "body_length": len(body),
    }


@web.middleware
async def count_requests(request: web.Request, handler):
    if request.path in _UNCOUNTED:
        return await handler(request)
    stats = request.app[STATS]
    stats.started += 1
    try:
        stats.last = await describe(request)
        response = await handler(request)
    except (asyncio.CancelledError, ConnectionResetError):
        stats.cancelled += 1
        raise
    except web.HTTPException:
        stats.completed += 1  # an HTTP error reply is a normal outcome
        raise
    except BaseException:
        stats.failed += 1
        raise
    stats.completed += 1
    return response


async def hold_until_disconnect(request: web.Request) -> None:
    """Wait until the client goes away, then raise ConnectionResetError.

    With ``handler_cancellation=True`` (``run_backend``) the disconnect cancels us sooner; the polling keeps this
    correct under servers that don't cancel handlers (e.g. pytest's ``aiohttp_client``).
    """
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.25)
    raise ConnectionResetError("client went away")


async def echo(request: web.Request) -> web.Response:
    """Describe the request back. `?respond_header=Name:%20value` (repeatable) adds response headers."""
    response = web.json_response(await describe(request), status=int(request.query.get("status", "200")))
    for spec in request.query.getall("respond_header", []):
        name, _, value = spec.partition(":")
        response.headers.add(name.strip(), value.strip())
    return response


async def stall(request: web.Request) -> web.StreamResponse:
    """Accept the request and never send a status line."""
    await request.read()
    await hold_until_disconnect(request)
    raise AssertionError("unreachable")


async def stall_body(request: web.Request) -> web.StreamResponse:
    """Send SSE headers and one chat chunk, then go silent."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    await response.write(sse({"id": "chatcmpl-stall", "object": "chat.completion.chunk", "created": 0,
                              "model": "fake-reasoner-1",
                              "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                           "logprobs": None, "finish_reason": None}]}))
    await hold_until_disconnect(request)
    raise AssertionError("unreachable")


async def last(request: web.Request) -> web.Response:
    described = request.app[STATS].last
    return web.json_response(described or {}, status=200 if described else 404)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS].as_dict())


async def reset(request: web.Request) -> web.Response:
    request.app[STATS].reset()
    return web.json_response(request.app[STATS].as_dict())


def install(app: web.Application) -> None:
    app[STATS] = Stats()
    app.middlewares.append(count_requests)
    app.router.add_route("*", "/_test/echo", echo)
    app.router.add_route("*", "/_test/echo/{tail:.*}", echo)
    app.router.add_route("*", "/_test/stall", stall)
    app.router.add_route("*", "/_test/stall_body", stall_body)
    app.router.add_get("/_test/last", last)
    app.router.add_get("/_test/stats", stats)
    app.router.add_post("/_test/reset", reset)
