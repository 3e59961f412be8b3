"""Running the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.app import build_app
from gateway.config import Settings

log = structlog.get_logger("gateway.server")


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
    )
    await runner.setup()
    site = web.TCPSite(runner, server.host, server.port, reuse_port=reuse_port or None, backlog=2048)
    await site.start()
    sockets = site._server.sockets if site._server else []  # the real port when port 0 was asked for
    port = sockets[0].getsockname()[1] if sockets else server.port
    return runner, f"http://{server.host}:{port}"


async def run_until_signalled(start: Callable[[], Awaitable[Callable[[], Awaitable[None]]]]) -> None:
    """Start something, wait for SIGINT/SIGTERM, then run the stop callback it returned."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    stop = await start()
    await stop_requested.wait()
    log.info("shutting_down")
    await stop()


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    async def start():
        runner, url = await start_gateway(settings, reuse_port=reuse_port)
        log.info("listening", url=url, pid=os.getpid())
        return runner.cleanup

    asyncio.run(run_until_signalled(start))


def serve_workers(config_path: str | None, workers: int) -> int:
    """Supervise N `gateway serve --worker` processes bound to the same port; relay signals; exit when all exit."""
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--worker"]
    if config_path:
        cmd += ["--config", config_path]
    children = [subprocess.Popen(cmd) for _ in range(workers)]

    def relay(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, relay)
    signal.signal(signal.SIGTERM, relay)
    codes = [child.wait() for child in children]
    return max(codes, default=0)
