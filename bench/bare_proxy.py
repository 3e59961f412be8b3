"""The Python floor: the least a correct aiohttp reverse proxy must do, to compare the gateway against.

One pooled ClientSession; the raw path and query forwarded untouched; hop-by-hop headers (and those named by
`Connection`) dropped both ways; the response body streamed chunk by chunk as it arrives (SSE stays live);
client disconnects cancel the handler and so close the upstream request. No auth, no parsing, no logging.

    python -m bench.bare_proxy --port 8081 --upstream http://127.0.0.1:9000     # prints READY <url>
"""
from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.signals import run_until_signalled

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
# Set by the client library / server for the next hop from the actual message, never copied.
_RECOMPUTED_REQUEST = frozenset({"host", "content-length"})

SESSION = web.AppKey("bare_proxy_session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("bare_proxy_upstream", str)


def end_to_end(headers, drop: frozenset[str] = frozenset()) -> CIMultiDict:
    """Copy of ``headers`` without hop-by-hop ones, those listed in `Connection`, and ``drop``."""
    listed = {t.strip().lower() for v in headers.getall("Connection", ()) for t in v.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items()
                       if (name := k.lower()) not in HOP_BY_HOP and name not in listed and name not in drop)


async def forward(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    url = URL(request.app[UPSTREAM] + request.raw_path, encoded=True)  # raw: keep %-encoding as received
    body = await request.read()
    try:
        async with session.request(request.method, url, data=body or None, allow_redirects=False,
                                   headers=end_to_end(request.headers, _RECOMPUTED_REQUEST)) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                          headers=end_to_end(upstream.headers, frozenset({"content-length"})))
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
        if request.transport is None or request.transport.is_closing():
            raise  # our own client left; nothing to answer
        return web.json_response({"error": {"message": f"upstream: {exc.__class__.__name__}",
                                            "type": "api_error", "code": "upstream_error"}}, status=502)


async def _session_ctx(app: web.Application):
    # auto_decompress off: bytes pass through as the backend encoded them. No pool limit beyond the OS.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=300)
    app[SESSION] = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                         skip_auto_headers=("User-Agent", "Accept-Encoding"))
    yield
    await app[SESSION].close()


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def run_bare_proxy(upstream: str, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(make_app(upstream), handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


async def _serve(upstream: str, host: str, port: int) -> None:
    async def start():
        runner, url = await run_bare_proxy(upstream, host, port)
        print(f"READY {url}", flush=True)
        return runner.cleanup

    await run_until_signalled(start)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare_proxy", description="minimal aiohttp reverse proxy")
    p.add_argument("--upstream", required=True, help="backend base URL, e.g. http://127.0.0.1:9000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (see the READY line)")
    args = p.parse_args(argv)
    asyncio.run(_serve(args.upstream, args.host, args.port))


if __name__ == "__main__":
    main()
