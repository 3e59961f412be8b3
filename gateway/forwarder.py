"""The last link of the chain: sends the exchange upstream over one pooled ClientSession.

Connection failures become 502 `upstream_error`, silence longer than the read timeout becomes 504
`upstream_timeout`, both in the client's dialect. The body is read by the caller chunk by chunk.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from gateway.config import ServerSettings, UpstreamSettings
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.headers import finish_upstream_headers


def upstream_error(message: str) -> GatewayError:
    return GatewayError(502, "upstream_error", message)


def upstream_timeout(message: str) -> GatewayError:
    return GatewayError(504, "upstream_timeout", message)


class Forwarder:
    def __init__(self, upstream: UpstreamSettings, server: ServerSettings) -> None:
        self.settings = upstream
        self.server = server
        self._base = upstream.url
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.settings.max_connections, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.connect_timeout_s, sock_read=self.settings.read_timeout_s
        )
        # auto_decompress=False: the client gets the upstream's bytes exactly; compression is refused upstream.
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def target(self, ex: Exchange) -> URL:
        raw = self._base + ex.path + (f"?{ex.query_string}" if ex.query_string else "")
        return URL(raw, encoded=True)

    async def send(self, ex: Exchange) -> aiohttp.ClientResponse:
        """Send the request; return the response with headers read. Raises GatewayError 502/504."""
        assert self._session is not None, "Forwarder.start() not called"
        headers = finish_upstream_headers(
            ex.request_headers,
            client_ip=ex.client_ip,
            scheme=ex.scheme,
            host=ex.host,
            forward_authorization=self.settings.forward_authorization,
            trust_forwarded=self.server.trust_forwarded,
            extra=self.settings.headers,
        )
        body = ex.body if ex.body is not None else await ex.read_body()
        try:
            resp = await self._session.request(
                ex.method,
                self.target(ex),
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
                # A proxy must not rewrite or re-encode the path it was given.
                compress=None,
            )
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError):
            raise upstream_timeout("The reasoning backend did not answer in time.") from None
        except aiohttp.ClientConnectorError:
            raise upstream_error("The reasoning backend is unreachable.") from None
        except aiohttp.ClientError as exc:
            raise upstream_error(f"The reasoning backend failed: {type(exc).__name__}.") from None
        return resp


async def iter_body(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Upstream body chunks as they arrive (no buffering). Raises GatewayError on timeout or a broken upstream."""
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError):
        raise upstream_timeout("The reasoning backend stopped sending in the middle of the response.") from None
    except aiohttp.ClientError as exc:
        raise upstream_error(f"The reasoning backend broke off the response: {type(exc).__name__}.") from None
