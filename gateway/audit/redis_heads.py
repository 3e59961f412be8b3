"""Session chain heads in Redis, for replicas that write the same sessions.

``next`` reads the head, calls the pure ``seal(seq, prev)`` and stores the result with a compare-and-set Lua
script that succeeds only if the head is still what was read. A replica that lost the race reads again and reseals
(``seal`` is pure, so the discarded hash costs nothing), which is what keeps two replicas from both extending the
same head and forking the session. Calls of one instance for one session are serialized locally first, so races
happen only between replicas.

A head is stored as ``"<seq>:<hash>"`` under ``<prefix><session_id>``, refreshed to ``ttl_s`` on every write. When
Redis has no head (a session older than Redis, or whose key expired), the optional ``recover`` loader (e.g.
``store_head_loader(store)``) supplies the store's head so the session continues instead of restarting at 1.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.audit.chain import Head, HeadLoader, Seal

T = TypeVar("T")

# KEYS: head key. ARGV: expected value ('' = absent), new value, ttl_ms. 1 = swapped, 0 = head moved meanwhile.
_CAS = """
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class SessionHeadsUnavailable(Exception):
    """The session head could not be advanced (Redis unreachable, a corrupt head, or endless contention). No
    record was sealed for good: the audit path answers 503 `audit_unavailable`."""


def _encode(head: Head) -> str:
    return f"{head[0]}:{head[1]}"


def _decode(raw: bytes) -> Head:
    seq, sep, digest = raw.decode("ascii", "replace").partition(":")
    if not sep or not seq.isdigit() or not digest:
        raise SessionHeadsUnavailable("a session head in Redis is malformed")
    return int(seq), digest


class RedisSessionHeads:
    """`gateway.audit.chain.SessionHeads` shared through Redis."""

    def __init__(self, url: str, *, recover: HeadLoader | None = None, key_prefix: str = "gw:audit:head:",
                 ttl_s: float = 90 * 24 * 3600.0, timeout_s: float = 2.0, max_attempts: int = 100) -> None:
        if ttl_s <= 0 or max_attempts < 1:
            raise ValueError("ttl_s must be positive and max_attempts at least 1")
        # one retry without delay: a pooled connection is dead after a Redis restart, the next one is not
        self._redis = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                     retry=Retry(NoBackoff(), 1))
        self._cas = self._redis.register_script(_CAS)
        self._recover = recover
        self._prefix = key_prefix
        self._ttl_ms = max(1, math.ceil(ttl_s * 1000))
        self._max_attempts = max_attempts
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._new: set[str] = set()

    def declare_new(self, session_id: str) -> None:
        """The gateway just assigned this session id: it has no history, so skip the store lookup."""
        self._new.add(session_id)

    async def next(self, session_id: str, seal: Seal) -> tuple[int, str | None]:
        key = self._prefix + session_id
        async with self._serialized(session_id):
            recovered: list[Head | None] = []  # loaded at most once per call, even across lost races
            for _ in range(self._max_attempts):
                raw = await self._call(self._redis.get(key))
                if raw is not None:
                    head: Head | None = _decode(raw)
                    expected: bytes = raw
                else:
                    if self._recover is not None and not recovered and session_id not in self._new:
                        recovered.append(await self._recover_head(session_id))
                    head = recovered[0] if recovered else None
                    expected = b""
                seq, prev = (head[0] + 1, head[1]) if head else (1, None)
                new = _encode((seq, seal(seq, prev)))
                if await self._call(self._cas(keys=[key], args=[expected, new, self._ttl_ms])):
                    self._new.discard(session_id)
                    return seq, prev
        raise SessionHeadsUnavailable(f"session head still contended after {self._max_attempts} attempts")

    async def head(self, session_id: str) -> Head | None:
        raw = await self._call(self._redis.get(self._prefix + session_id))
        return None if raw is None else _decode(raw)

    async def close(self) -> None:
        await self._redis.aclose()

    async def _recover_head(self, session_id: str) -> Head | None:
        assert self._recover is not None
        try:
            return await self._recover(session_id)
        except Exception as err:  # without the store's head we would fork the session: refuse instead
            raise SessionHeadsUnavailable("the session head could not be recovered from the store") from err

    @staticmethod
    async def _call(op: Awaitable[T]) -> T:
        try:
            return await op
        except (RedisError, OSError) as err:
            raise SessionHeadsUnavailable("Redis is unreachable for session heads") from err

    @asynccontextmanager
    async def _serialized(self, session_id: str) -> AsyncIterator[None]:
        """One call at a time per session in this process; the lock is dropped when nobody waits on it."""
        lock, users = self._locks.setdefault(session_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop(session_id, None)
