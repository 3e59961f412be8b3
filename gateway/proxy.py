"""The proxy handler: builds the exchange, runs the chain, streams the response, and always accounts for it."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from contextlib import asynccontextmanager
from functools import partial

import aiohttp
import structlog
from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.config import Settings
from gateway.errors import GatewayError, dialect_for, error_bytes, sse_error_bytes
from gateway.exchange import Exchange, new_session_id, payload_too_large
from gateway.filters.chain import FilterChain
from gateway.forwarder import Forwarder, iter_body, upstream_error
from gateway.headers import client_response_headers, inbound_headers
from gateway.metrics import Metrics
from gateway.paths import bad_request, check_proxy_path, check_session_id
from gateway.revocation.errors import token_revoked
from gateway.revocation.live import LiveExchanges

log = structlog.get_logger("gateway.access")

CLIENT_GONE = 499  # nginx's convention for "client closed the connection", used in metrics and logs only


class ProxyHandler:
    def __init__(
        self,
        settings: Settings,
        chain: FilterChain,
        forwarder: Forwarder,
        metrics: Metrics,
        access_log: AccessLog | None = None,
        live: LiveExchanges | None = None,
    ) -> None:
        self.live = live
        """In-flight exchanges by principal: a revocation ends them (None: no revocation store)."""
        self.settings = settings
        self.chain = chain
        self.forwarder = forwarder
        self.metrics = metrics
        self.max_body = settings.server.max_body_bytes
        self.access_log = access_log if settings.logging.access_log else None
        self.trust_forwarded = settings.server.trust_forwarded

    def new_exchange(self, request: web.Request) -> Exchange:
        path, _, query = request.raw_path.partition("?")
        headers = request.headers
        session = headers.get("X-Session-Id")
        now = time.time()
        ex = Exchange(
            method=request.method,
            path=path,
            query_string=query,
            request_headers=inbound_headers(headers, trust_forwarded=self.trust_forwarded),
            client_ip=request.remote or "",
            scheme=request.scheme,
            host=headers.get("Host", ""),
            dialect=dialect_for(path, headers),
            session_id=session or new_session_id(now),
            session_assigned=session is None,
            started_wall=now,
            max_body_bytes=self.max_body,
        )
        ex.body_reader = partial(_read_body, request, self.max_body)
        return ex

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        ex = self.new_exchange(request)
        structlog.contextvars.bind_contextvars(request_id=ex.request_id)
        try:
            return await self._handle(request, ex)
        finally:
            self._account(ex)
            structlog.contextvars.unbind_contextvars("request_id")

    async def _handle(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        upstream: aiohttp.ClientResponse | None = None
        response: web.StreamResponse | None = None
        unregister = None
        try:
            self._check_request(request, ex)
            await self.chain.run_request(ex, hold=partial(self._hold_open, request, ex))
            if self.live is not None and ex.principal is not None:
                unregister = self.live.register(ex.principal, partial(_terminate, ex))
            started = time.perf_counter()
            upstream = ex.annotations[UPSTREAM] = await self.forwarder.send(ex)
            self.metrics.observe_upstream(ex.route, time.perf_counter() - started)
            ex.mark("upstream_headers")
            _raise_if_terminated(ex)
            response = self._response_for(ex, upstream)
            await self._stream_body(request, ex, upstream, response)
            return response
        except GatewayError as err:
            return await self._fail(request, ex, err, response or ex.annotations.get(HELD))
        except Exception:
            # A bug in a filter must not become a traceback to the client or, worse, unfiltered output.
            log.exception("exchange_failed")
            err = GatewayError(500, "internal_error", "The gateway failed to process this request.")
            return await self._fail(request, ex, err, response or ex.annotations.get(HELD))
        except (asyncio.CancelledError, ConnectionResetError):
            # The client went away: stop reading upstream now so the backend stops generating.
            ex.response_status = CLIENT_GONE
            ex.annotations["client_disconnected"] = True
            self.metrics.client_disconnects.inc()
            if upstream is not None:
                upstream.close()
            raise
        finally:
            if unregister is not None:
                unregister()
            ex.annotations.pop(UPSTREAM, None)
            if upstream is not None:
                upstream.release()
            self.chain.run_complete(ex)

    def _check_request(self, request: web.Request, ex: Exchange) -> None:
        check_proxy_path(ex.path)
        if len(request.headers.getall("X-Session-Id", ())) > 1:
            raise bad_request("Send at most one X-Session-Id header.", code="invalid_session_id")
        if not ex.session_assigned:
            check_session_id(ex.session_id)
        length = request.content_length
        if length is not None and length > self.max_body:
            raise payload_too_large(self.max_body)

    async def _fail(
        self, request: web.Request, ex: Exchange, err: GatewayError, response: web.StreamResponse | None
    ) -> web.StreamResponse:
        if (response is None or not response.prepared) and err is ex.annotations.get(TERMINATED) \
                and err.code == "stream_terminated":
            err = token_revoked()  # revoked before anything was sent: answer as a new request would be
        ex.error = err
        if ex.decision == "allow":
            ex.decision = "error"
        if response is None or not response.prepared:
            return await self._local_reply(ex, err)
        await self._end_broken_stream(request, ex, err, response)
        return response

    def _response_for(self, ex: Exchange, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        """The client response, not yet sent: headers go out with the first body bytes the filters release,
        so a filter that refuses a buffered body (a whole JSON answer) can still answer with a clean error."""
        held = ex.annotations.get(HELD)
        if held is not None:  # a streaming client kept alive while parked: its 200 event stream is already open
            if upstream.status != 200 or upstream.content_type.lower() != "text/event-stream":
                raise upstream_error(f"The reasoning backend answered {upstream.status} "
                                     f"({upstream.content_type}) instead of an event stream.")
            ex.response_status = 200
            ex.response_headers = client_response_headers(upstream.headers, body_rewritten=True)
            self.chain.run_response_headers(ex)
            return held
        rewrites = self.chain.rewrites_body
        ex.response_status = upstream.status
        ex.response_content_type = upstream.content_type.lower()
        ex.response_headers = client_response_headers(upstream.headers, body_rewritten=rewrites)
        encoding = upstream.headers.get("Content-Encoding", "identity").strip().lower()
        if rewrites and encoding not in ("", "identity"):
            # Inspecting filters cannot read a compressed body; passing it unread would fail open.
            raise upstream_error("The reasoning backend sent a compressed body although identity was requested.")
        self.chain.run_response_headers(ex)
        headers = ex.response_headers
        headers["X-Gateway-Request-Id"] = ex.request_id
        headers["X-Gateway-Session-Id"] = ex.session_id
        return web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)

    async def _stream_body(
        self, request: web.Request, ex: Exchange, upstream: aiohttp.ClientResponse, response: web.StreamResponse
    ) -> None:
        transform = self.chain.body_transform(ex)
        recording = self.chain.records_output
        streaming = ex.response_content_type == "text/event-stream"
        if streaming:
            self.metrics.active_streams.inc()
        try:
            try:
                async for chunk in iter_body(upstream):
                    out = transform.feed(chunk, False)
                    if out:
                        if not response.prepared:
                            await response.prepare(request)
                            ex.mark("first_byte")
                        if recording:
                            self.chain.run_output(ex, out)
                        await response.write(out)
                        ex.bytes_out += len(out)
            except GatewayError:
                _raise_if_terminated(ex)  # a closed upstream surfaces as upstream_error: report why it was closed
                raise
            _raise_if_terminated(ex)
            tail = transform.feed(b"", True)
            if recording:
                if tail:
                    self.chain.run_output(ex, tail)
                # strict audit: the record of everything sent is durable before the response can complete
                await self.chain.run_finish(ex)
            if not response.prepared:
                await response.prepare(request)
                ex.mark("first_byte")
            if tail:
                await response.write(tail)
                ex.bytes_out += len(tail)
            await response.write_eof()
        finally:
            if streaming:
                self.metrics.active_streams.dec()

    @asynccontextmanager
    async def _hold_open(self, request: web.Request, ex: Exchange):
        """While the exchange is parked (approval): a client that asked for a stream gets its 200 event stream
        at once and an SSE comment every `KEEPALIVE_S`, so proxies and SDK timeouts don't drop it; the verdict
        then follows in the same stream (the answer, or an in-band error). Others just wait."""
        if not _wants_stream(ex):
            yield
            return
        held = ex.annotations.get(HELD)
        if held is None:
            held = web.StreamResponse(status=200, headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                "X-Gateway-Request-Id": ex.request_id, "X-Gateway-Session-Id": ex.session_id})
            await held.prepare(request)
            ex.annotations[HELD] = held
            ex.response_status, ex.response_content_type = 200, "text/event-stream"
            ex.mark("first_byte")
        ticker = asyncio.create_task(self._keep_alive(ex, held))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await ticker

    async def _keep_alive(self, ex: Exchange, held: web.StreamResponse) -> None:
        while True:
            if self.chain.records_output:
                self.chain.run_output(ex, KEEPALIVE)
            await held.write(KEEPALIVE)
            ex.bytes_out += len(KEEPALIVE)
            await asyncio.sleep(KEEPALIVE_S)

    async def _end_broken_stream(
        self, request: web.Request, ex: Exchange, err: GatewayError, response: web.StreamResponse
    ) -> None:
        """Headers already went out: tell an SSE client in-band; cut anything else so it can't look complete."""
        if ex.response_content_type == "text/event-stream":
            data = sse_error_bytes(err, ex.dialect)
            if self.chain.records_output:
                self.chain.run_output(ex, data)
                try:
                    await self.chain.run_finish(ex)
                except GatewayError:
                    pass  # already failing: the stream ends with this error event either way
            try:
                await response.write(data)
                await response.write_eof()
                return
            except ConnectionResetError:
                return
        if request.transport is not None:
            request.transport.abort()

    async def _local_reply(self, ex: Exchange, err: GatewayError) -> web.Response:
        ex.response_status = err.status
        if self.chain.records_output:
            ex.response_content_type = "application/json"
            self.chain.run_output(ex, error_bytes(err, ex.dialect))
            try:
                await self.chain.run_finish(ex)
            except GatewayError as audit_err:
                # An error reply carries no payload, so it still goes out (with its own, more useful code), but
                # the log says it was not recorded.
                log.warning("local_reply_unrecorded", code=err.code, audit_error=audit_err.code)
        headers = {
            **err.headers,
            "X-Gateway-Request-Id": ex.request_id,
            "X-Gateway-Session-Id": ex.session_id,
        }
        return web.Response(
            status=err.status, body=error_bytes(err, ex.dialect), content_type="application/json", headers=headers
        )

    def _account(self, ex: Exchange) -> None:
        ex.mark("total")
        status = ex.response_status or 0
        self.metrics.count_request(ex.route, status, ex.decision)
        if self.access_log is not None:
            self.access_log.write(
                {
                    "request_id": ex.request_id,
                    "session_id": ex.session_id,
                    "method": ex.method,
                    "route": ex.route,
                    "status": status,
                    "decision": ex.decision,
                    "rule": ex.rule,
                    "error": ex.error.code if ex.error else None,
                    "bytes_out": ex.bytes_out,
                    **ex.timings,
                }
            )


UPSTREAM = "_upstream"
HELD = "_held_response"
"""``ex.annotations`` key: the event stream opened for a streaming client while its request was parked."""
KEEPALIVE = b": waiting for approval\n\n"
KEEPALIVE_S = 5.0


def _wants_stream(ex: Exchange) -> bool:
    body = ex.body
    if not body or b'"stream"' not in body:
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True
TERMINATED = "terminated"
"""``ex.annotations`` key: the error a revocation (or another outside event) ended the exchange with."""


def _terminate(ex: Exchange, err: GatewayError) -> None:
    """Called by `LiveExchanges` when the principal is revoked: end the exchange with `err`. Closing the upstream
    response wakes the body loop, which then raises `err` (an in-band `stream_terminated` event mid-stream)."""
    ex.annotations[TERMINATED] = err
    upstream = ex.annotations.get(UPSTREAM)
    if upstream is not None:
        upstream.close()


def _raise_if_terminated(ex: Exchange) -> None:
    err = ex.annotations.get(TERMINATED)
    if err is not None:
        ex.decision = "terminated"
        raise err


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The whole body; aiohttp stops reading as soon as it passes ``client_max_size`` (set to limit + 1)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise payload_too_large(limit) from None
