"""The audit uploader's hot path: conditional PUTs over aiohttp, signed by botocore's SigV4 signer.

Why not boto3 here: a boto3 `put_object` costs ~1.6 ms of CPU in this process (its request pipeline, not the
network), run on threads that fight the event loop for the GIL; with three objects per record that capped a
gateway at ~200 recorded requests/s and added tens of milliseconds to every request. The same PUT sent by aiohttp
and signed with `botocore.auth.S3SigV4Auth` (the library's signer — nothing hand-rolled) costs ~0.3 ms and runs
on the event loop without threads. Everything else (GET, LIST, the start-up probe, the 412 follow-up read) stays
on boto3.

Semantics are `S3Store.put_if_absent`'s: ``If-None-Match: *``; 412 → the existing object decides (identical = ok,
different = `ConflictError`); 409 ConditionalRequestConflict → retry; network errors, timeouts, 5xx, 408, 429 →
`StoreUnavailable`; other statuses → `StoreError`.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from yarl import URL

from gateway.audit.store import ConflictError, StoreError

_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_TRANSIENT = {b"SlowDown", b"RequestTimeout", b"InternalError", b"ServiceUnavailable", b"Throttling"}


class SignedPutter:
    def __init__(self, *, bucket: str, endpoint_url: str, region: str, credentials: Any, virtual_host: bool,
                 get_existing: Callable[[str], Awaitable[bytes | None]], unavailable: type[StoreError],
                 connect_timeout: float, read_timeout: float, max_connections: int, conflict_retries: int) -> None:
        parts = urlsplit(endpoint_url)
        self._origin = (f"{parts.scheme}://{bucket}.{parts.netloc}/" if virtual_host
                        else f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/{bucket}/")
        self._bucket = bucket
        self._region = region
        self._credentials = credentials
        self._get_existing = get_existing
        self._unavailable = unavailable
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout)
        self._max_connections = max_connections
        self._conflict_retries = conflict_retries
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False, skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"))
        return self._session

    def _signed_headers(self, url: str, data: bytes) -> dict[str, str]:
        # frozen credentials per call: refreshable ones (instance roles) renew themselves
        req = AWSRequest(method="PUT", url=url, data=data, headers={"If-None-Match": "*"})
        S3SigV4Auth(self._credentials, "s3", self._region).add_auth(req)
        return dict(req.headers.items())

    async def put_if_absent(self, key: str, full: str, data: bytes) -> bool:
        # keys are [A-Za-z0-9._=/-]; `=` must travel as %3D, the form SigV4 signs (yarl must not undo it)
        url = self._origin + quote(full, safe="/-_.~")
        target = URL(url, encoded=True)
        where = f"S3 PutObject s3://{self._bucket}/{full}"
        for attempt in range(self._conflict_retries + 1):
            try:
                async with self._client().put(target, data=data, headers=self._signed_headers(url, data)) as resp:
                    status, body = resp.status, await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise self._unavailable(f"{where}: {type(exc).__name__}: {exc}") from None
            if 200 <= status < 300:
                return True
            m = _CODE.search(body)
            code = m.group(1) if m else b""
            if status == 412:
                existing = await self._get_existing(full)
                if existing == data:
                    return True
                if existing is not None:
                    raise ConflictError(key)
                if attempt:
                    raise StoreError(f"{where}: 412 Precondition Failed but no object there")
                continue
            if status == 409 and code in (b"ConditionalRequestConflict", b"OperationAborted"):
                await asyncio.sleep(min(0.05 * 2 ** attempt, 1.0))
                continue
            text = f"{where}: {status} {code.decode('ascii', 'replace')}".rstrip()
            if status >= 500 or status in (408, 429) or code in _TRANSIENT:
                raise self._unavailable(text)
            raise StoreError(text)
        raise self._unavailable(f"{where}: still conflicting after {self._conflict_retries + 1} attempts")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
