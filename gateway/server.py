"""Running the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT)."""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import traceback

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.app import build_app
from gateway.config import Settings
from gateway.signals import run_until_signalled

log = structlog.get_logger("gateway.server")


class ServerErrorLog:
    """Stands in for aiohttp's ``aiohttp.server`` logger inside the HTTP protocol handler.

    aiohttp logs a malformed request as a plain-text traceback on stderr whose message quotes the offending raw
    bytes (an oversized ``Authorization`` line, a chunk of the body). This writes one JSON line instead, with the
    error class, the HTTP status and code locations only: never exception messages, so never request bytes.
    """

    def __init__(self) -> None:
        self._log = structlog.get_logger("gateway.http")

    def _emit(self, level: str, msg: object, args: tuple, exc_info: object) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else (sys.exc_info()[1] if exc_info else None)
        fields: dict[str, object] = {}
        try:
            fields["detail"] = str(msg) % args if args else str(msg)  # aiohttp's own text; args: the peer address
        except (TypeError, ValueError):
            fields["detail"] = str(msg)
        if exc is not None:
            fields["error"] = type(exc).__name__
            if isinstance(exc, HttpProcessingError):  # a malformed request: the client's fault, not an outage
                fields["status"] = exc.code
                level = "warning" if level == "error" else level
            else:  # a fault in the gateway: where it happened helps, the message (may quote payload) is left out
                fields["traceback"] = "".join(traceback.format_tb(exc.__traceback__))
        getattr(self._log, level)("http_error", **fields)

    def debug(self, msg: object, *args: object, exc_info: object = None, **_: object) -> None:
        self._emit("debug", msg, args, exc_info)

    def info(self, msg: object, *args: object, exc_info: object = None, **_: object) -> None:
        self._emit("info", msg, args, exc_info)

    def warning(self, msg: object, *args: object, exc_info: object = None, **_: object) -> None:
        self._emit("warning", msg, args, exc_info)

    def error(self, msg: object, *args: object, exc_info: object = None, **_: object) -> None:
        self._emit("error", msg, args, exc_info)

    def exception(self, msg: object, *args: object, exc_info: object = True, **_: object) -> None:
        self._emit("error", msg, args, exc_info)


async def start_gateway(settings: Settings, *, reuse_port: bool = False) -> tuple[web.AppRunner, str]:
    """Start serving; returns the runner (``await runner.cleanup()`` stops gracefully) and the base URL."""
    app = build_app(settings)
    server = settings.server
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a client that disconnects cancels its handler, and so the upstream request
        shutdown_timeout=server.shutdown_grace_s,
        access_log=None,
        max_field_size=server.max_header_bytes,
        max_line_size=server.max_header_bytes,
        logger=ServerErrorLog(),  # aiohttp's default quotes raw request bytes (tokens, bodies) in plain-text logs
    )
    await runner.setup()
    # Everything built so far (modules, compiled detectors, policy) lives for the whole process: move it out of
    # the collector's reach so the periodic full collections triggered by request garbage stay cheap.
    gc.collect()
    gc.freeze()
    # Full collections every 100 (not 10) young-generation passes. Long-lived request state (1,000 parked
    # approvals are ~90k tracked objects) makes each full pass scan it all: with the default, unparked traffic
    # lost 9-25% CPU per request while requests were parked; with 100 it lost none (bench.approvals_bench).
    # Cyclic garbage that reached the old generation waits longer to be freed; young cycles are unaffected.
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 100)
    site = web.TCPSite(runner, server.host, server.port, reuse_port=reuse_port or None, backlog=2048)
    await site.start()
    sockets = site._server.sockets if site._server else []  # the real port when port 0 was asked for
    port = sockets[0].getsockname()[1] if sockets else server.port
    return runner, f"http://{server.host}:{port}"


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    async def start():
        runner, url = await start_gateway(settings, reuse_port=reuse_port)
        log.info("listening", url=url, pid=os.getpid())

        async def stop() -> None:
            log.info("shutting_down")
            await runner.cleanup()

        return stop

    asyncio.run(run_until_signalled(start))


def serve_workers(config_path: str | None, workers: int) -> int:
    """Supervise N `gateway serve --worker` processes bound to the same port; relay signals; exit when all exit."""
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--worker"]
    if config_path:
        cmd += ["--config", config_path]
    children = [subprocess.Popen(cmd, env={**os.environ, "GATEWAY_WORKER_INDEX": str(i)}) for i in range(workers)]

    def relay(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, relay)
    signal.signal(signal.SIGTERM, relay)
    codes = [child.wait() for child in children]
    return max(codes, default=0)
