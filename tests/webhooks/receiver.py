"""A real HTTP receiver on a free loopback port that checks every request with the reference verifier."""
from __future__ import annotations

import asyncio
import base64
import os
import time
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import free_port


def make_secret(n: int = 32) -> str:
    """A fresh `whsec_` secret of `n` random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(n)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    """time.monotonic() when the request arrived."""
    verified: bool
    error: str | None


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hang: bool = False
    """Never answer (until the test ends)."""


class Receiver:
    """Answers with the scripted `replies` in order (then 200); refuses (401) a request whose signature fails."""

    def __init__(self, secret: str | None, replies: list[Reply] | None = None) -> None:
        self.verifier = Webhook(secret) if secret else None
        self.replies = list(replies or [])
        self.requests: list[Received] = []
        self.arrived = asyncio.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/in"
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hooks/in", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async def _until() -> None:
            while len(self.requests) < n:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(_until(), timeout)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        verified, error = True, None
        if self.verifier is not None:
            try:
                self.verifier.verify(body, headers, json_parse=False)
            except WebhookVerificationError as exc:
                verified, error = False, str(exc)
        self.requests.append(Received(headers, body, time.monotonic(), verified, error))
        self.arrived.set()
        if not verified:
            return web.Response(status=401)
        reply = self.replies.pop(0) if self.replies else Reply()
        if reply.hang:
            await self._release.wait()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(status=reply.status, headers=reply.headers)
