"""Redis approval store: several replicas share approvals, grants and wake-ups.

Writes are Lua scripts (:mod:`gateway.approvals.redis_scripts`): compare-and-set of the record plus its indexes
and a PUBLISH of the id, all atomic. Each store instance keeps ONE pub/sub connection; a parked request costs a
future in :class:`Waiters`, not a connection. When that subscription breaks, every local waiter is woken to re-read:
with Redis gone the re-read fails and the request gets 503 (nothing is forwarded); after a reconnect, whatever
changed meanwhile is seen. Any Redis failure surfaces as :class:`ApprovalStoreUnavailable`.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.approvals import machine
from gateway.approvals.errors import ApprovalStoreUnavailable
from gateway.approvals.model import PENDING, TERMINAL, Approval, ApprovalPage
from gateway.approvals.redis_scripts import CREATE, SWAP, Keys
from gateway.approvals.settings import ApprovalSettings
from gateway.approvals.store import MAX_CAS_ATTEMPTS, BaseApprovalStore, EventHook

log = structlog.get_logger("gateway.approvals.redis")
T = TypeVar("T")
_SCAN_BATCH = 100


class RedisApprovalStore(BaseApprovalStore):
    keepalive_s: float = 15.0
    """Idle time on the subscription before it is PINGed (and, without an answer, as long again: dropped)."""

    def __init__(self, url: str, *, ttl_s: float = 3600.0, grant_ttl_s: float = 600.0, retention_s: float = 86400.0,
                 prefix: str = "gw:approvals:", timeout_s: float = 2.0, max_connections: int = 64,
                 on_event: EventHook | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(grant_ttl_s, on_event, clock)
        self.keys = Keys(prefix)
        self.timeout_s = timeout_s
        self._keep_s = ttl_s + grant_ttl_s + retention_s
        self._ttl_s = ttl_s
        opts: dict[str, Any] = dict(socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        # A blocking pool: a thousand parked requests re-reading at once queue for a few connections instead of
        # failing with "too many connections". One quick retry lets a pooled connection that died with a Redis
        # restart reconnect; no backoff, so an outage is reported within the timeout, not after seconds of sleep.
        # Waiting for a free connection is not an outage (the socket timeouts catch those): a burst of a thousand
        # requests on a busy machine queued longer than `timeout_s` and got 503s with Redis healthy.
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=max(10 * timeout_s, 10.0),
                                               retry=Retry(NoBackoff(), 1), **opts)
        self._client = Redis(connection_pool=pool)
        # The subscriber never retries by itself: a silent resubscribe would hide lost messages from us.
        self._sub_client = Redis.from_url(url, retry=Retry(NoBackoff(), 0), **opts)
        self._create = self._client.register_script(CREATE)
        self._swap = self._client.register_script(SWAP)
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._warned_at = -1e9
        self.subscriptions = 0
        """Successful (re)subscriptions so far: more than one means wake-ups were lost and recovered."""

    @classmethod
    def from_settings(cls, settings: ApprovalSettings, on_event: EventHook | None = None) -> "RedisApprovalStore":
        if not settings.redis_url:
            raise ValueError("approvals.redis_url is required for the redis backend")
        return cls(settings.redis_url, ttl_s=settings.ttl_s, grant_ttl_s=settings.grant_ttl_s,
                   retention_s=settings.retention_s, prefix=settings.key_prefix,
                   timeout_s=settings.redis_timeout_s, on_event=on_event)

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            return await op
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            now = time.monotonic()
            if now - self._warned_at >= 1.0:  # a thousand parked requests failing at once log one line
                self._warned_at = now
                log.warning("approval_store_unreachable", error=type(exc).__name__)
            raise ApprovalStoreUnavailable("The approval store (Redis) cannot be reached.") from None

    # -- primitives ---------------------------------------------------------------------------------------------
    async def _load(self, approval_id: str) -> tuple[Approval, Any] | None:
        raw = await self._call(self._client.get(self.keys.record(approval_id)))
        return (Approval.from_dict(orjson.loads(raw)), raw) if raw is not None else None

    async def _cas(self, token: Any, old: Approval, new: Approval) -> bool:
        now = self.clock()
        grant_ms = 0
        if new.state == "approved" and old.state != "approved" and new.grant_expires_at is not None:
            grant_ms = max(0, int((new.grant_expires_at - now) * 1000))
        k = self.keys
        done = await self._call(self._swap(
            keys=[k.record(new.id), k.pending, k.pending_for(new.fingerprint), k.grant(new.fingerprint)],
            args=[token, orjson.dumps(new.to_dict()), self._keep_ms(), new.id, "1" if new.state in TERMINAL else "0",
                  grant_ms, k.channel],
        ))
        return done == 1

    async def _insert_or_attach(self, candidate: Approval, now: float) -> tuple[Approval, bool]:
        k = self.keys
        for _ in range(MAX_CAS_ATTEMPTS):
            current = await self._call(self._client.get(k.pending_for(candidate.fingerprint)))
            if current is not None:
                loaded = await self._load(current.decode())
                if loaded and loaded[0].state == PENDING and not machine.is_due(loaded[0], now):
                    return loaded[0], False
            created = await self._call(self._create(
                keys=[k.record(candidate.id), k.pending_for(candidate.fingerprint), k.pending, k.index],
                args=[current or b"", candidate.id, orjson.dumps(candidate.to_dict()), self._keep_ms(),
                      max(1, int((candidate.expires_at - now) * 1000)), repr(candidate.expires_at),
                      repr(candidate.created_at), repr(now - self._keep_s)],
            ))
            if created == 1:
                return candidate, True
            if created == -1:
                raise ApprovalStoreUnavailable("An approval with this id already exists.", candidate.id)
        raise ApprovalStoreUnavailable("Could not register the approval under contention; try again.")

    async def _grant_id(self, fingerprint: str) -> str | None:
        raw = await self._call(self._client.get(self.keys.grant(fingerprint)))
        return raw.decode() if raw is not None else None

    async def _due_ids(self, now: float) -> list[str]:
        ids = await self._call(self._client.zrangebyscore(self.keys.pending, "-inf", repr(now), start=0, num=500))
        return [i.decode() for i in ids]

    def _keep_ms(self) -> int:
        return max(1000, int(self._keep_s * 1000))

    # -- listing ------------------------------------------------------------------------------------------------
    async def list(self, state: str | None = None, limit: int = 50, cursor: str | None = None) -> ApprovalPage:
        """Cursors are scores (expiry for the pending inbox, creation time otherwise), so approvals that end
        between two pages do not shift the rest out of view."""
        limit = max(1, limit)
        after = _score(cursor)
        now = self.clock()
        page: list[Approval] = []
        if state == PENDING:  # oldest first, not yet due (due ones are expired, whatever the sweeper did yet)
            bound, key, zrange = repr(max(now, after if after is not None else now)), self.keys.pending, "up"
        else:
            bound, key, zrange = (repr(after) if after is not None else "+inf"), self.keys.index, "down"
        while True:
            if zrange == "up":
                rows = await self._call(self._client.zrangebyscore(
                    key, f"({bound}", "+inf", start=0, num=_SCAN_BATCH, withscores=True))
            else:
                rows = await self._call(self._client.zrevrangebyscore(
                    key, f"({bound}" if bound != "+inf" else bound, "-inf", start=0, num=_SCAN_BATCH,
                    withscores=True))
            if not rows:
                return ApprovalPage(page, None)
            docs = await self._call(self._client.mget([self.keys.record(i.decode()) for i, _ in rows]))
            for (_, score), raw in zip(rows, docs):
                if len(page) == limit:
                    return ApprovalPage(page, bound)
                bound = repr(score)
                if raw is None:
                    continue
                approval = Approval.from_dict(orjson.loads(raw))
                if machine.is_due(approval, now):
                    approval = await self.get(approval.id, now)
                if state is None or approval.state == state:
                    page.append(approval)

    # -- wake-ups -----------------------------------------------------------------------------------------------
    async def _ready_to_wait(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="approval-wakeups")
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), self.timeout_s)
            except asyncio.TimeoutError:
                raise ApprovalStoreUnavailable("The approval store (Redis) cannot be reached.") from None

    async def start(self) -> None:
        """Subscribe now, so the first parked request does not pay for it."""
        try:
            await self._ready_to_wait()
        except ApprovalStoreUnavailable:
            log.warning("approval_wakeups_not_ready")  # keeps trying in the background

    async def _listen(self) -> None:
        """Keep one subscription; wake the waiters named by each message, all of them after any gap."""
        backoff = 0.05
        while True:
            pubsub = self._sub_client.pubsub()
            try:
                await pubsub.subscribe(self.keys.channel)
                while (msg := await pubsub.get_message(timeout=self.timeout_s)) is None or msg["type"] != "subscribe":
                    if msg is None:
                        raise ApprovalStoreUnavailable("no subscription confirmation")
                # Subscribed for sure: from here no change is missed; re-read whatever changed before.
                self.subscriptions += 1
                self._ready.set()
                self.waiters.wake_all()
                backoff = 0.05
                await self._relay(pubsub)
            except (RedisError, OSError, ApprovalStoreUnavailable, asyncio.TimeoutError) as exc:
                if self._ready.is_set() or backoff == 0.05:  # once per outage, not once per retry
                    log.warning("approval_wakeups_lost", error=type(exc).__name__)
            except Exception:  # never let a surprise end wake-ups for good; the next wait restarts us anyway
                log.exception("approval_wakeups_failed")
            finally:
                self._ready.clear()
                self.waiters.wake_all()
                try:
                    await pubsub.aclose()
                except Exception:  # the connection is already gone; nothing to release
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _relay(self, pubsub: Any) -> None:
        """Wake the waiters each message names. A silent connection is PINGed; no answer to that within
        ``keepalive_s`` counts as a lost subscription (a half-open TCP connection would otherwise hide it)."""
        awaiting_pong = False
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.keepalive_s)
            if msg is None:
                if awaiting_pong:
                    raise ApprovalStoreUnavailable("the subscription went silent")
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            if msg["type"] == "message":
                self.waiters.wake(msg["data"].decode())

    async def ping(self) -> None:
        await self._call(self._client.ping())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None
        self.waiters.wake_all()
        await self._client.aclose()
        await self._sub_client.aclose()


def _score(cursor: str | None) -> float | None:
    try:
        return float(cursor) if cursor else None
    except ValueError:
        return None
