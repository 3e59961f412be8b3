"""Run something until SIGINT/SIGTERM: the one loop every long-running command here shares (gateway, dev mode,
demo backend, dev issuer, benchmark helpers). Kept free of heavy imports so small helpers start fast."""
from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

Stop = Callable[[], Awaitable[None]]


async def run_until_signalled(start: Callable[[], Awaitable[Stop]]) -> None:
    """Start something, wait for SIGINT/SIGTERM, then run the stop callback it returned."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    stop = await start()
    try:
        await stop_requested.wait()
    finally:
        await stop()
