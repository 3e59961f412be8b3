"""`s3://bucket/prefix` audit store: boto3 behind the three-call `ObjectStore` interface.

Every boto3 call runs on a small dedicated thread pool (one client, which boto3 documents as thread-safe), never
on the event loop. The only write is `PutObject` with ``If-None-Match: *``, so the log is append-only at the
store: a 412 means the key exists, and then the existing object decides — identical bytes count as success (a
retried upload whose first attempt landed is harmless, as in Tessera's aws driver), different bytes raise
`ConflictError`, an alarm. Stores that ignore the condition would silently overwrite, so `probe_conditional_writes`
proves the behaviour once at start-up and the gateway refuses to run on a store that fails it.

Errors: `StoreUnavailable` (network trouble, timeouts, 5xx, throttling — spool and retry later), `ConflictError`
(never retried), plain `StoreError` for what needs an operator (bad credentials, missing bucket, ...).

SeaweedFS (4.x, the test store) differs from AWS S3 in ways the tests pin down:
- Listing order: AWS lists keys in byte order; SeaweedFS lists directory by directory (``a/x`` before ``a-b``,
  since the directory ``a`` sorts before the name ``a-b``) and its ``StartAfter`` follows that order, so paging
  with the last key returned is lossless on both. Only keys whose directory segments differ at a character
  below ``/`` (``-`` or ``.``) come out in a different order there.
- A conditional PUT of ``k`` is refused (412) while keys exist under ``k/``, though there is no object ``k``;
  `put_if_absent` reports that as a `StoreError` instead of looping. The audit layout never nests keys so.
- Concurrent conditional PUTs to one key are serialised by a lock retried in 1 s steps: correct, but slow under
  contention (the audit log has one writer per key, so it does not contend).
- For a few seconds after a restart reads can fail with 500 InternalError (`StoreUnavailable`) until the volume
  server has re-registered with the master.
"""
from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError

from gateway.audit.s3_put import SignedPutter
from gateway.audit.store import ConflictError, StoreError, validate_key, validate_prefix

__all__ = ["ConditionalWritesUnsupported", "S3Store", "StoreUnavailable"]

T = TypeVar("T")

PROBE_PREFIX = ".probe/"
"""Probe objects live under `<prefix>/.probe/`; `list` hides `.`-segments (no real key has one)."""

# Error codes that mean "try again later" even when the status is not 5xx.
_TRANSIENT_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "SlowDown", "Throttling", "ThrottlingException",
    "ThrottledException", "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "ServiceUnavailable", "InternalError", "PriorRequestNotComplete",
})
# A concurrent conditional write to the same key is in flight (S3 returns 409 ConditionalRequestConflict): retry.
_CONFLICT_RETRY_CODES = frozenset({"ConditionalRequestConflict", "OperationAborted"})


class StoreUnavailable(StoreError):
    """The store cannot be reached or answered with a transient failure (network, timeout, 5xx, throttling).
    Nothing is known to be lost: spool and retry later."""


class ConditionalWritesUnsupported(StoreError):
    """The store does not honour ``If-None-Match: *`` on PutObject, so it cannot hold an append-only log."""


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def probe_bodies(key: str) -> tuple[bytes, bytes]:
    """The two different bodies `probe_conditional_writes` writes to its probe key."""
    return (f"conditional-write probe {key} #1\n".encode(),
            f"conditional-write probe {key} #2 (must be refused)\n".encode())


def _hidden(key: str) -> bool:
    return key.startswith(".") or "/." in key


class S3Store:
    """`ObjectStore` on S3 or an S3-compatible service (SeaweedFS, MinIO, Ceph...).

    `prefix` is prepended to every key (``<prefix>/<key>``); keys handed out by `list` are relative to it.
    Credentials are `access_key`/`secret_key` (+ `session_token`) when given, else boto3's standard chain
    (``AWS_ACCESS_KEY_ID``…, shared config/credentials files, container/instance roles). With an `endpoint_url`
    (an S3-compatible service) buckets are addressed path-style. Each call gets `connect_timeout`/`read_timeout`
    and at most `max_attempts` tries in botocore's standard retry mode (backoff with jitter) before it surfaces as
    `StoreUnavailable`. `max_workers` bounds the thread pool and the HTTP connection pool alike. `client` replaces
    the boto3 client (tests pass a stubbed one).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        addressing_style: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        max_workers: int = 16,
        conflict_retries: int = 5,
        list_page_size: int = 1000,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3 store needs a bucket")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        access_key, secret_key, session_token = access_key or None, secret_key or None, session_token or None
        if (access_key is None) != (secret_key is None):
            raise ValueError("S3 store: give both access_key and secret_key, or neither (standard AWS chain)")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self._base = f"{prefix}/" if prefix else ""
        self._conflict_retries = conflict_retries
        self._putter: SignedPutter | None = None
        """The fast PUT path (aiohttp + botocore's signer); None when a test passes its own boto3 client."""
        self._page = max(1, min(list_page_size, 1000))
        if client is None:
            config = Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": max_attempts},
                max_pool_connections=max_workers,
                # S3-compatible endpoints rarely have wildcard DNS for virtual-hosted buckets
                s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            )
            # A fresh session per store: boto3's default session is shared module state.
            session = boto3.session.Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key, aws_session_token=session_token,
                region_name=region)
            client = session.client("s3", endpoint_url=endpoint_url, config=config)
            credentials = session.get_credentials()
            if credentials is not None:  # no credentials anywhere: boto3 reports that on first use
                style = addressing_style or ("path" if endpoint_url else "auto")
                self._putter = SignedPutter(
                    bucket=bucket, endpoint_url=client.meta.endpoint_url,
                    region=client.meta.region_name or "us-east-1", credentials=credentials,
                    virtual_host=style == "virtual" or (style == "auto" and not endpoint_url),
                    get_existing=lambda full: self._run(self._get_sync, full), unavailable=StoreUnavailable,
                    connect_timeout=connect_timeout, read_timeout=read_timeout, max_connections=max_workers,
                    conflict_retries=conflict_retries)
        self._client = client
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="audit-s3")

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        **options: Any,
    ) -> S3Store:
        """`s3://bucket` or `s3://bucket/some/prefix`. Credentials: explicit, else the standard AWS chain
        (environment, shared config/credentials files, instance/container roles)."""
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"not an S3 store URI (want s3://bucket/prefix): {uri!r}")
        return cls(parts.netloc, parts.path.strip("/"), endpoint_url=endpoint_url, region=region,
                   access_key=access_key, secret_key=secret_key, **options)

    @property
    def location(self) -> str:
        """Where this store points, for messages (never includes credentials)."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def __repr__(self) -> str:
        return f"S3Store({self.location})"

    # -- ObjectStore ---------------------------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        full = self._base + validate_key(key)
        return await self._run(self._get_sync, full)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        full = self._base + validate_key(key)
        if self._putter is not None:
            if self._executor is None:
                raise StoreError(f"{self!r} is closed")
            return await self._putter.put_if_absent(key, full, bytes(data))
        return await self._run(self._put_sync, key, full, bytes(data))

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int = 1000) -> list[str]:
        validate_prefix(prefix)
        if limit <= 0:
            return []
        return await self._run(self._list_sync, prefix, start_after, limit)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._putter is not None:
            await self._putter.close()
        await asyncio.to_thread(executor.shutdown, True)  # let in-flight uploads finish
        self._client.close()

    # -- start-up check ------------------------------------------------------------------------------------------
    async def probe_conditional_writes(self, *, token: str | None = None) -> None:
        """Prove the store honours ``If-None-Match: *``: create a unique probe object, then try to create it
        again with different bytes and require 412 Precondition Failed (and the first bytes still there).

        Raises `ConditionalWritesUnsupported` (naming the endpoint) if the second write is accepted or the
        condition is rejected as unsupported, `StoreUnavailable` if the store cannot be reached, `StoreError` for
        other failures (credentials, bucket). The probe object is deleted afterwards when deletes are allowed.
        """
        key = f"{PROBE_PREFIX}conditional-write-{token or uuid.uuid4().hex}"
        full = self._base + key
        first, second = probe_bodies(key)
        await self._run(self._probe_put, full, first, True)
        try:
            if await self._run(self._probe_put, full, second, False):
                raise ConditionalWritesUnsupported(
                    f"{self.location} does not honour conditional writes: a PutObject with 'If-None-Match: *' "
                    f"replaced the existing object {full!r} instead of failing with 412 Precondition Failed; "
                    "the audit log needs an append-only store (AWS S3, or an S3-compatible store with "
                    "conditional writes)")
            stored = await self._run(self._get_sync, full)
            if stored != first:
                raise ConditionalWritesUnsupported(
                    f"{self.location} answered 412 to a conditional PutObject but the object {full!r} no longer "
                    "holds the bytes first written: conditional writes are not reliable on this store")
            if not await self._run(self._put_sync, key, full, first):  # identical re-put counts as success
                raise ConditionalWritesUnsupported(f"{self.location}: identical re-put of {full!r} failed")
        finally:
            await self._run(self._delete_quietly, full)

    # -- blocking parts (run on the pool) ------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError(f"{self!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    def _error(self, exc: Exception, op: str, key: str) -> StoreError:
        where = f"S3 {op} s3://{self.bucket}/{key}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        if isinstance(exc, ClientError):
            status, code = _status(exc), _code(exc)
            msg = exc.response.get("Error", {}).get("Message") or ""
            text = f"{where}: {status} {code} {msg}".rstrip()
            if status >= 500 or status in (408, 429) or code in _TRANSIENT_CODES:
                return StoreUnavailable(text)
            return StoreError(text)
        if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError, OSError)):
            return StoreUnavailable(f"{where}: {exc}")
        return StoreError(f"{where}: {exc}")

    def _get_sync(self, full: str) -> bytes | None:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=full)
            with resp["Body"] as body:
                return body.read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "NotFound") or (_status(exc) == 404 and _code(exc) != "NoSuchBucket"):
                return None
            raise self._error(exc, "GetObject", full) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error(exc, "GetObject", full) from exc

    def _put_sync(self, key: str, full: str, data: bytes) -> bool:
        for attempt in range(self._conflict_retries + 1):
            try:
                self._client.put_object(Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*")
                return True
            except ClientError as exc:
                status, code = _status(exc), _code(exc)
                if status == 412 or code == "PreconditionFailed":
                    existing = self._get_sync(full)
                    if existing == data:
                        return True
                    if existing is not None:
                        raise ConflictError(key) from None
                    if attempt:
                        # SeaweedFS answers 412 when other keys live under `<key>/` (a directory) although
                        # there is no object at `key`; the layout never makes a key the parent of another.
                        raise StoreError(f"S3 PutObject s3://{self.bucket}/{full}: 412 Precondition Failed "
                                         "but no object there (is the key also a 'directory' of others?)") from None
                    # gone between the 412 and the read (deleted by hand?): try the write once more
                elif status == 409 and code in _CONFLICT_RETRY_CODES:
                    time.sleep(min(0.05 * 2 ** attempt, 1.0))  # another conditional write is in flight
                else:
                    raise self._error(exc, "PutObject", full) from exc
            except (BotoCoreError, OSError) as exc:
                raise self._error(exc, "PutObject", full) from exc
        raise StoreUnavailable(f"S3 PutObject s3://{self.bucket}/{full}: still conflicting after "
                               f"{self._conflict_retries + 1} attempts")

    def _list_sync(self, prefix: str, start_after: str | None, limit: int) -> list[str]:
        out: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._base + prefix}
        if start_after is not None:
            kwargs["StartAfter"] = self._base + start_after
        cut = len(self._base)
        try:
            while True:
                kwargs["MaxKeys"] = min(self._page, limit - len(out))
                resp = self._client.list_objects_v2(**kwargs)
                for obj in resp.get("Contents") or ():
                    key = obj["Key"][cut:]
                    if not _hidden(key):
                        out.append(key)
                        if len(out) == limit:
                            return out
                if not resp.get("IsTruncated"):
                    return out
                token = resp.get("NextContinuationToken")
                if token:
                    kwargs["ContinuationToken"] = token
                elif resp.get("Contents"):
                    kwargs["StartAfter"] = resp["Contents"][-1]["Key"]
                else:  # truncated, no token, no keys: a broken server; stop rather than loop forever
                    return out
        except ClientError as exc:
            raise self._error(exc, "ListObjectsV2", self._base + prefix) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error(exc, "ListObjectsV2", self._base + prefix) from exc

    def _probe_put(self, full: str, data: bytes, must_succeed: bool) -> bool:
        """One conditional PUT for the probe. True if it was accepted, False on 412."""
        try:
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            status, code = _status(exc), _code(exc)
            if (status == 412 or code == "PreconditionFailed") and not must_succeed:
                return False
            if status in (400, 501) or code in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                raise ConditionalWritesUnsupported(
                    f"{self.location} rejected a PutObject with 'If-None-Match: *' ({status} {code}): "
                    "the audit log needs an S3 store with conditional writes") from exc
            raise self._error(exc, "PutObject", full) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error(exc, "PutObject", full) from exc

    def _delete_quietly(self, full: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except (BotoCoreError, ClientError, OSError):
            pass  # deletes may be forbidden by policy (object lock, no s3:DeleteObject): the probe is harmless
