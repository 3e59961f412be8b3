"""Lua scripts that make each approval write atomic on Redis, and the key layout they work on.

Every key carries the hash tag ``{<prefix>}`` so all of them land in one cluster slot (a script may touch several).
The record is compare-and-set on its exact stored bytes: a writer that read an older version loses and retries,
so two approvers deciding at once on two replicas are both counted and exactly one of them completes it.
"""
from __future__ import annotations

from dataclasses import dataclass

CREATE = """
-- KEYS: record, fingerprint->pending id, pending zset, index zset
-- ARGV: expected pending id ('' = none), id, record, record ttl ms, fingerprint ttl ms, expires_at, created_at,
--       index cutoff
local cur = redis.call('GET', KEYS[2])
if (cur or '') ~= ARGV[1] then return 0 end
if not redis.call('SET', KEYS[1], ARGV[3], 'NX', 'PX', ARGV[4]) then return -1 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[8])
return 1
"""

SWAP = """
-- KEYS: record, pending zset, fingerprint->pending id, fingerprint->grant
-- ARGV: old record, new record, record ttl ms, id, '1' if the new state is terminal, grant ttl ms ('0' = none),
--       channel
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
end
if tonumber(ARGV[6]) > 0 then redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[6]) end
redis.call('PUBLISH', ARGV[7], ARGV[4])
return 1
"""


@dataclass(frozen=True, slots=True)
class Keys:
    """Pure key naming for one prefix."""

    prefix: str

    @property
    def _tag(self) -> str:
        return "{" + self.prefix + "}"

    def record(self, approval_id: str) -> str:
        return f"{self._tag}a:{approval_id}"

    def pending_for(self, fingerprint: str) -> str:
        return f"{self._tag}fp:{fingerprint}"

    def grant(self, fingerprint: str) -> str:
        return f"{self._tag}grant:{fingerprint}"

    @property
    def pending(self) -> str:
        """Sorted set: pending ids by expiry time (the sweeper's and the inbox's view)."""
        return f"{self._tag}pending"

    @property
    def index(self) -> str:
        """Sorted set: every id by creation time, trimmed past retention (listings)."""
        return f"{self._tag}index"

    @property
    def channel(self) -> str:
        """Pub/sub channel: the id of every approval that changed, for waiters on every replica."""
        return f"{self.prefix}changed"
