"""Revocations shared by every replica through Redis, checked against a local mirror.

Layout: one key per revocation (``<prefix>rev:<id>``, JSON, expiring with the revocation) and a sorted set
``<prefix>index`` (id scored by expiry) to load them all. Writes and their announcement on the pub/sub channel
happen in one Lua script, so no replica can see a change Redis does not hold, or the reverse.

Each replica follows Redis with one task: subscribe, wait for the confirmation, *then* load everything, then
apply messages. Messages that arrive during the load wait in the subscription's socket and are applied after it;
replaying a change the load already reflected is harmless (adds are idempotent by id, deletes of absent ids are
no-ops), so nothing published after the subscription started can be lost. After any break the task starts over
with a full load, which also drops what was deleted while it was away.

Freshness: every message and every heartbeat pong counts as contact. `fresh` is False once the last contact is
older than `max_staleness_s` (or before the first load): the revocation filter then answers 503 rather than trust
a mirror that may be missing a revocation made elsewhere. Within that window a replica keeps serving from its
mirror, so a Redis blip does not turn into an outage; the price is that a replica cut off from Redis may miss a
revocation for up to `max_staleness_s` before it starts refusing everything.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.principal import Principal
from gateway.revocation.errors import RevocationStoreUnavailable
from gateway.revocation.mirror import Listener, RevocationMirror
from gateway.revocation.model import InvalidRevocation, Revocation, is_revocation_id, new_revocation
from gateway.revocation.settings import RevocationSettings
from gateway.revocation.store import EVENT_CREATED, EVENT_DELETED, EventHook, fire, resolve_ttl

log = structlog.get_logger("gateway.revocation")

# KEYS: revocation key, index. ARGV: id, json, ttl_ms, expires_at, now, channel, message
_ADD = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
"""
# KEYS: revocation key, index. ARGV: id, channel, message. Returns the deleted JSON, or nil when there was none.
_DELETE = """
local v = redis.call('GET', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if not v then return false end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return v
"""
_LOAD_BATCH = 500


class _Resync(Exception):
    """The client re-subscribed under us: messages may have been missed, so start over with a full load."""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


class RedisRevocationStore:
    """A `RevocationStore` for several replicas; see the module docstring for the sync and freshness rules."""

    def __init__(self, url: str, settings: RevocationSettings | None = None, *, on_event: EventHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = s = settings or RevocationSettings(backend="redis")
        self.on_event = on_event
        self._clock = clock
        self._mirror = RevocationMirror(clock)
        # Commands retry once (a pooled connection may be dead after a Redis restart); the subscription never
        # retries by itself, so every break reaches our loop and ends in a full reload.
        self._cmd = Redis.from_url(url, socket_connect_timeout=s.redis_timeout_s, socket_timeout=s.redis_timeout_s,
                                   retry=Retry(NoBackoff(), 1))
        self._sub = Redis.from_url(url, socket_connect_timeout=s.redis_timeout_s, socket_timeout=s.redis_timeout_s,
                                   retry=Retry(NoBackoff(), 0))
        self._add_script = self._cmd.register_script(_ADD)
        self._delete_script = self._cmd.register_script(_DELETE)
        self._index = s.key_prefix + "index"
        self._task: asyncio.Task[None] | None = None
        self._loaded_once = asyncio.Event()
        self._last_contact: float | None = None
        self._closing = False
        self.synced = False
        """True while subscribed with the mirror loaded (False from a break until the next full load)."""

    def _key(self, revocation_id: str) -> str:
        return f"{self.settings.key_prefix}rev:{revocation_id}"

    # -- freshness -------------------------------------------------------------------------------------------

    @property
    def staleness_s(self) -> float:
        """Seconds since the last confirmed contact with Redis (inf before the first load)."""
        return math.inf if self._last_contact is None else time.monotonic() - self._last_contact

    @property
    def fresh(self) -> bool:
        return self.staleness_s <= self.settings.max_staleness_s

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self, wait_s: float | None = None) -> bool:
        """Start following Redis; wait up to `wait_s` (default `redis_timeout_s`) for the first load."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="revocation-sync")
        with suppress(TimeoutError):
            async with asyncio.timeout(self.settings.redis_timeout_s if wait_s is None else wait_s):
                await self._loaded_once.wait()
        return self.fresh

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        # On 3.11 a cancel that lands as an inner read timeout fires can be swallowed (redis-py reads under
        # asyncio.timeout); the loops also watch `_closing`, and the cancel is repeated until the task is done.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=self.settings.heartbeat_s * 2)
        self.synced = False
        self._last_contact = None  # a closed store no longer follows Redis: never fresh again
        await self._cmd.aclose()
        await self._sub.aclose()

    # -- requests --------------------------------------------------------------------------------------------

    def is_revoked(self, principal: Principal) -> Revocation | None:
        return self._mirror.match(principal)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._mirror.subscribe(listener)

    # -- admin -----------------------------------------------------------------------------------------------

    async def add(self, kind: str, value: str, *, reason: str, created_by: str,
                  ttl_s: float | None = None) -> Revocation:
        now = self._clock()
        rev = new_revocation(kind, value, reason=reason, created_by=created_by,
                             ttl_s=resolve_ttl(ttl_s, self.settings), now=now)
        message = _dumps({"op": "add", "revocation": rev.to_dict()})
        try:
            await self._add_script(keys=[self._key(rev.id), self._index], args=[
                rev.id, _dumps(rev.to_dict()), max(1, math.ceil(rev.ttl_s * 1000)), repr(rev.expires_at),
                repr(now), self.settings.channel, message])
        except (RedisError, OSError) as err:
            raise RevocationStoreUnavailable("Redis did not confirm the revocation") from err
        self._mirror.put(rev)  # effective here at once; our own pub/sub echo is then a no-op
        await fire(self.on_event, EVENT_CREATED, rev)
        return rev

    async def delete(self, revocation_id: str) -> Revocation | None:
        if not is_revocation_id(revocation_id):
            return None
        message = _dumps({"op": "delete", "id": revocation_id})
        try:
            raw = await self._delete_script(keys=[self._key(revocation_id), self._index],
                                            args=[revocation_id, self.settings.channel, message])
        except (RedisError, OSError) as err:
            raise RevocationStoreUnavailable("Redis did not confirm the deletion") from err
        self._mirror.remove(revocation_id)
        if raw is None:
            return None
        rev = Revocation.from_dict(json.loads(raw))
        await fire(self.on_event, EVENT_DELETED, rev)
        return rev

    async def list(self) -> list[Revocation]:
        """Read from Redis (the truth), not the mirror: an admin must see what every replica will converge to."""
        try:
            revs = await self._load()
        except (RedisError, OSError) as err:
            raise RevocationStoreUnavailable("Redis could not be read") from err
        return sorted(revs, key=lambda r: (r.created_at, r.id))

    async def _load(self) -> list[Revocation]:
        now = self._clock()
        ids = await self._cmd.zrangebyscore(self._index, f"({now!r}", "+inf")
        revs: list[Revocation] = []
        for start in range(0, len(ids), _LOAD_BATCH):
            chunk = [rid.decode() for rid in ids[start:start + _LOAD_BATCH]]
            for raw in await self._cmd.mget([self._key(rid) for rid in chunk]):
                if raw is None:
                    continue  # expired between the two reads
                try:
                    rev = Revocation.from_dict(json.loads(raw))
                except (ValueError, TypeError):
                    log.warning("revocation_record_ignored")
                    continue
                if rev.active(now):
                    revs.append(rev)
        return revs

    # -- following Redis -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.settings.reconnect_initial_s
        first_attempt = True
        while not self._closing:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any failure ends in a fresh subscription and a full reload
                if self.synced or first_attempt:  # one line per outage, not one per retry
                    log.warning("revocation_subscription_lost", error=type(err).__name__)
                if self.synced:
                    delay = self.settings.reconnect_initial_s
                self.synced = False
            first_attempt = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _follow(self) -> None:
        pubsub = self._sub.pubsub()
        try:
            await pubsub.subscribe(self.settings.channel)
            await self._confirmed(pubsub)
            self._mirror.replace(await self._load())
            self._last_contact = time.monotonic()
            self.synced = True
            self._loaded_once.set()
            log.info("revocations_synced", count=len(self._mirror))
            await self._apply_messages(pubsub)
        finally:
            with suppress(Exception):
                async with asyncio.timeout(self.settings.redis_timeout_s):
                    await pubsub.aclose()

    async def _confirmed(self, pubsub: PubSub) -> None:
        """Wait until Redis confirms the subscription: only then is every later change sure to reach us."""
        async with asyncio.timeout(self.settings.redis_timeout_s):
            while True:
                msg = await pubsub.get_message(timeout=self.settings.redis_timeout_s)
                if msg is not None and msg["type"] == "subscribe":
                    return

    async def _apply_messages(self, pubsub: PubSub) -> None:
        heartbeat = self.settings.heartbeat_s
        next_ping = time.monotonic() + heartbeat
        while not self._closing:
            msg = await pubsub.get_message(timeout=heartbeat)
            now = time.monotonic()
            if msg is not None:
                self._last_contact = now
                if msg["type"] == "message":
                    self._apply(msg["data"])
                elif msg["type"] == "subscribe":
                    raise _Resync()
            if now >= next_ping:
                await pubsub.ping()
                next_ping = now + heartbeat
                self._mirror.prune()
            if self._last_contact is not None and now - self._last_contact > 3 * heartbeat:
                raise TimeoutError("no reply on the revocation subscription")

    def _apply(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
            if msg["op"] == "add":
                self._mirror.put(Revocation.from_dict(msg["revocation"]))
            elif msg["op"] == "delete":
                self._mirror.remove(str(msg["id"]))
            else:
                raise ValueError("unknown op")
        except (ValueError, KeyError, TypeError, InvalidRevocation):
            log.warning("revocation_message_ignored")
