"""A fake reasoning backend over real HTTP: OpenAI Chat Completions, Responses API, Anthropic Messages, models.

One aiohttp app serves the `gateway dev` demo, the end-to-end tests (driven by the official SDKs) and the
benchmark. Behaviour comes from ``BackendOptions`` and can be overridden per request with ``X-Fake-*`` headers:

    X-Fake-Chunks: 200          text-carrying chunks per streamed answer (reasoning half first, then the answer)
    X-Fake-Delay-Ms: 5          pause between two stream frames
    X-Fake-Stall-After: 1       send this many frames, then hold the stream idle until the client leaves
    X-Fake-Plant: 1             reasoning (and answer) carry planted fake PII/secrets
    X-Fake-Reasoning: <text>    what to reason / answer (percent-encoded UTF-8 allowed)
    X-Fake-Content: <text>
    X-Fake-Status: 503          answer with this status and an error body in the endpoint's dialect

Run ``python -m gateway.devtools.backend --port 9000`` (prints ``READY <url>`` once listening).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from gateway.devtools import anthropic_wire, openai_wire, test_controls
from gateway.devtools.scripts import Script, make_script, pick_tool
from gateway.signals import run_until_signalled


@dataclass(frozen=True)
class BackendOptions:
    chunks: int = 40
    """Text-carrying chunks per streamed answer; the demo default. The benchmark uses 200."""
    delay_ms: float = 0.0
    """Pause between two stream frames."""
    stall_after: int | None = None
    """Send this many frames of every stream, then hold it idle until the client leaves (None: never)."""
    plant_secrets: bool = False
    """Reasoning carries fake PII/secrets (email, phone, card, AWS key, customer id) for the masking demo."""
    reasoning: str | None = None
    """Reasoning text to stream instead of the built-in one."""
    content: str | None = None
    """Answer text to stream instead of the built-in one."""
    model: str = "fake-reasoner-1"
    """Model listed by /v1/models and used when a request names none."""
    precompute: bool = False
    """Render each distinct request shape once and replay the cached bytes (fixed ids, no per-chunk JSON
    encoding), so the benchmark measures the proxy rather than this server."""
    test_controls: bool = False
    """Mount /_test/* (echo, stall, stall_body, last, stats, reset) and count requests."""


@dataclass(frozen=True, slots=True)
class Knobs:
    """The options in force for one request: ``BackendOptions`` overridden by its ``X-Fake-*`` headers."""

    chunks: int
    delay_s: float
    stall_after: int | None
    planted: bool
    reasoning: str | None
    content: str | None
    status: int | None

    @classmethod
    def from_request(cls, request: web.Request, opts: BackendOptions) -> "Knobs":
        h = request.headers
        stall = h.get("X-Fake-Stall-After")

        def text(name: str, default: str | None) -> str | None:
            return unquote(h[name]) if name in h else default  # header values are latin-1: allow %-encoded UTF-8

        return cls(
            chunks=int(h.get("X-Fake-Chunks", opts.chunks)),
            delay_s=float(h.get("X-Fake-Delay-Ms", opts.delay_ms)) / 1000,
            stall_after=int(stall) if stall is not None else opts.stall_after,
            planted=h.get("X-Fake-Plant", "1" if opts.plant_secrets else "0").lower() in ("1", "true", "yes"),
            reasoning=text("X-Fake-Reasoning", opts.reasoning),
            content=text("X-Fake-Content", opts.content),
            status=int(h["X-Fake-Status"]) if "X-Fake-Status" in h else None,
        )


OPTIONS = web.AppKey("devtools_options", BackendOptions)
RENDERED = web.AppKey("devtools_rendered", dict)
"""Cache of rendered answers by request shape (only with ``precompute``)."""
_CACHE_MAX = 256

# (endpoint, stream) -> render(script, model, include_usage) -> bytes (a JSON body) or list[bytes] (SSE frames)
Render = Callable[[Script, str, bool], "bytes | list[bytes]"]
_RENDER: dict[tuple[str, bool], Render] = {
    ("chat", False): lambda s, m, u: openai_wire.dumps(openai_wire.chat_completion(s, m)).encode(),
    ("chat", True): lambda s, m, u: openai_wire.chat_chunks(s, m, u),
    ("responses", False): lambda s, m, u: openai_wire.dumps(openai_wire.response_object(s, m)).encode(),
    ("responses", True): lambda s, m, u: openai_wire.response_events(s, m),
    ("messages", False): lambda s, m, u: openai_wire.dumps(anthropic_wire.message(s, m)).encode(),
    ("messages", True): lambda s, m, u: anthropic_wire.message_events(s, m),
}
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def _error(endpoint: str, status: int, message: str) -> web.Response:
    body = (anthropic_wire if endpoint == "messages" else openai_wire).error_body(status, message)
    return web.json_response(body, status=status)


async def _answer(request: web.Request, endpoint: str) -> web.StreamResponse:
    opts = request.app[OPTIONS]
    try:
        knobs = Knobs.from_request(request, opts)
    except ValueError as exc:
        return _error(endpoint, 400, f"bad X-Fake-* header: {exc}")
    if knobs.status:
        return _error(endpoint, knobs.status, f"fake error requested with X-Fake-Status: {knobs.status}")
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(endpoint, 400, "the request body must be a JSON object")

    stream = body.get("stream") is True
    model = str(body.get("model") or opts.model)
    tool = pick_tool(body.get("tools")) if body.get("tool_choice") != "none" else None
    stream_options = body.get("stream_options")
    include_usage = stream and isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    key = (endpoint, stream, model, include_usage, knobs.chunks, knobs.planted, knobs.reasoning, knobs.content,
           tool and (tool[0], json.dumps(tool[1], sort_keys=True)))
    cache = request.app[RENDERED] if opts.precompute else None
    rendered = cache.get(key) if cache is not None else None
    if rendered is None:
        script = make_script(knobs.chunks, reasoning=knobs.reasoning, content=knobs.content,
                             planted=knobs.planted, tool=tool)
        rendered = _RENDER[endpoint, stream](script, model, include_usage)
        if cache is not None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[key] = rendered
    if not stream:
        return web.Response(body=rendered, content_type="application/json",
                            headers={"X-Request-Id": secrets.token_hex(8)})
    return await _stream(request, rendered, knobs)


async def _stream(request: web.Request, frames: list[bytes], knobs: Knobs) -> web.StreamResponse:
    response = web.StreamResponse(headers={**_SSE_HEADERS, "X-Request-Id": secrets.token_hex(8)})
    await response.prepare(request)  # StreamResponse sends the headers right away
    for i, frame in enumerate(frames):
        if i == knobs.stall_after:
            await test_controls.hold_until_disconnect(request)
        if i:
            # Unpaced streams still yield between frames, so concurrent streams interleave frame by frame like
            # a model server's token streams do, instead of one stream being written whole before the next.
            await asyncio.sleep(knobs.delay_s)
        # One write per frame: each becomes its own chunked-encoding chunk (and, unpaced, usually its own
        # TCP segment), so a proxy in front sees the per-event framing a real model server produces.
        await response.write(frame)
    await response.write_eof()
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _answer(request, "chat")


async def responses(request: web.Request) -> web.StreamResponse:
    return await _answer(request, "responses")


async def messages(request: web.Request) -> web.StreamResponse:
    return await _answer(request, "messages")


async def models(request: web.Request) -> web.Response:
    return web.json_response(openai_wire.models_list([request.app[OPTIONS].model]))


def make_app(options: BackendOptions | None = None) -> web.Application:
    options = options or BackendOptions()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[OPTIONS] = options
    app[RENDERED] = {}
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    if options.test_controls:
        test_controls.install(app)
    return app


async def run_backend(host: str = "127.0.0.1", port: int = 0,
                      options: BackendOptions | None = None) -> tuple[web.AppRunner, str]:
    """Start the backend on (host, port); port 0 picks a free one. Returns the runner (``await runner.cleanup()``
    to stop) and the base URL. Client disconnects cancel handlers, as in production aiohttp deployments."""
    # A short shutdown grace: stalled test streams would otherwise hold cleanup() for the default 60 s.
    runner = web.AppRunner(make_app(options), handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, BackendOptions]:
    p = argparse.ArgumentParser(prog="python -m gateway.devtools.backend", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (see the READY line)")
    p.add_argument("--chunks", type=int, default=BackendOptions.chunks)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--stall-after", type=int, default=None)
    p.add_argument("--plant-secrets", action="store_true", help="plant fake PII/secrets in the reasoning")
    p.add_argument("--precompute", action="store_true", help="cache rendered answers (benchmark fast path)")
    p.add_argument("--test-controls", action="store_true", help="mount /_test/* endpoints")
    args = p.parse_args(argv)
    return args, BackendOptions(chunks=args.chunks, delay_ms=args.delay_ms, stall_after=args.stall_after,
                                plant_secrets=args.plant_secrets, precompute=args.precompute,
                                test_controls=args.test_controls)


async def _serve(host: str, port: int, options: BackendOptions) -> None:
    async def start():
        runner, url = await run_backend(host, port, options)
        print(f"READY {url}", flush=True)
        return runner.cleanup

    await run_until_signalled(start)


def main(argv: list[str] | None = None) -> None:
    args, options = _parse_args(argv)
    asyncio.run(_serve(args.host, args.port, options))


if __name__ == "__main__":
    main()
