"""SMPP account limits that hold across Herald processes: binds at once and submits per
second, counted in Redis (``gateway/intake/README.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid

from gateway.base import tasks
from gateway.base.ratelimit import TokenBucket

log = logging.getLogger("herald.smpp")

BIND_PREFIX = "herald:smpp:binds:"
NODE_PREFIX = "herald:smpp:node:"

# KEYS[1] = account's set, KEYS[2] = the node's account list; ARGV = member, max binds, ttl (ms),
# account id. Returns {admitted 0/1, count}.
_RESERVE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    return {1, count}
end
if count >= tonumber(ARGV[2]) then
    return {0, count}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ttl * 2)
return {1, count + 1}
"""

# KEYS[1] = the node's account list, KEYS[i + 1] = account sets; ARGV[1] = ttl (ms),
# ARGV[i + 1] = the member in KEYS[i + 1]. Only members still present are pushed forward
# (XX): a released session stays released.
_REFRESH = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
for i = 2, #KEYS do
    redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[i])
    redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return #KEYS - 1
"""

# KEYS[1] = the node's account list; ARGV[1] = member prefix of the node. Removes every bind
# an earlier process of this node left behind; returns how many.
_PURGE = """
local removed = 0
local prefix = ARGV[1]
for _, account in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local key = ARGV[2] .. account
    for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
        if string.sub(member, 1, #prefix) == prefix then
            redis.call('ZREM', key, member)
            removed = removed + 1
        end
    end
end
redis.call('DEL', KEYS[1])
return removed
"""

# KEYS[1] = account's set. Live members after dropping the expired ones.
_COUNT = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


def _key(account_id: int) -> str:
    return f"{BIND_PREFIX}{account_id}"


class BindRegistry:
    """This process's SMPP binds, counted per account in Redis with the other processes'."""

    def __init__(self, redis, *, ttl: float = 30.0, node: str | None = None) -> None:
        """``node``: a name the same server keeps across restarts (host and port); None: a
        random one, whose leftovers after a crash wait for the TTL."""
        self.redis = redis
        self.ttl = ttl
        self.node = node or uuid.uuid4().hex[:16]
        self._live: dict[str, int] = {}  # member → account id
        self._reserve = redis.register_script(_RESERVE)
        self._refresh = redis.register_script(_REFRESH)
        self._count = redis.register_script(_COUNT)
        self._purge = redis.register_script(_PURGE)
        self._task: asyncio.Task | None = None

    @property
    def _ttl_ms(self) -> int:
        return max(1, math.ceil(self.ttl * 1000))

    def _member(self, session_id: str) -> str:
        return f"{self.node}/{session_id}"

    @property
    def _node_key(self) -> str:
        return f"{NODE_PREFIX}{self.node}"

    async def start(self) -> None:
        # Whatever an earlier process of this node left is dead: it was this node's own.
        removed = await self._purge(keys=[self._node_key], args=[self._member(""), BIND_PREFIX])
        if removed:
            log.info("event=smpp_stale_binds_cleared node=%s count=%s", self.node, removed)
        self._task = asyncio.create_task(self._refresher(), name="smpp-bind-registry")

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        self._task = None
        for member, account_id in list(self._live.items()):
            with contextlib.suppress(Exception):
                await self.redis.zrem(_key(account_id), member)
        self._live.clear()

    async def reserve(self, account_id: int, session_id: str, max_binds: int) -> bool:
        """Count ``session_id`` as a bind of the account if it has fewer than ``max_binds``."""
        member = self._member(session_id)
        admitted, _ = await self._reserve(keys=[_key(account_id), self._node_key],
                                          args=[member, max_binds, self._ttl_ms, account_id])
        if admitted:
            self._live[member] = account_id
        return bool(admitted)

    async def release(self, session_id: str) -> None:
        """The session closed (bound or not): free its slot, if it held one."""
        member = self._member(session_id)
        account_id = self._live.pop(member, None)
        if account_id is not None:
            await self.redis.zrem(_key(account_id), member)

    async def count(self, account_id: int) -> int:
        """Live binds of the account over all processes."""
        return int(await self._count(keys=[_key(account_id)]))

    async def refresh(self) -> None:
        """Push the expiry of this process's live sessions forward."""
        live = list(self._live.items())
        if live:
            await self._refresh(keys=[self._node_key, *[_key(a) for _, a in live]],
                                args=[self._ttl_ms, *[m for m, _ in live]])

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.refresh()
            except Exception:
                log.warning("event=smpp_bind_refresh_failed", exc_info=True)


class AccountThrottle:
    """An account's submits per second over all processes (``gateway/intake/README.md``)."""

    def __init__(self, redis, *, prefix: str = "smpp-account", hold: float = 1.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.hold = hold  # tokens kept locally longer than this are dropped, not spent late
        self._local: dict[int, tuple[int, float]] = {}  # account → (tokens, taken at)
        self._buckets: dict[int, TokenBucket] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _bucket(self, account_id: int, tps: int) -> TokenBucket:
        bucket = self._buckets.get(account_id)
        if bucket is None or bucket.rate != float(tps):
            bucket = TokenBucket(self.redis, f"{self.prefix}:{account_id}", rate=float(tps),
                                 burst=float(tps))
            self._buckets[account_id] = bucket
        return bucket

    def _spend(self, account_id: int) -> bool:
        tokens, taken = self._local.get(account_id, (0, 0.0))
        if tokens > 0 and time.monotonic() - taken <= self.hold:
            self._local[account_id] = (tokens - 1, taken)
            return True
        return False

    async def admit(self, account_id: int, tps: int | None) -> bool:
        """Whether one more PDU of the account may go now (no limit: always)."""
        if not tps or tps <= 0:
            return True
        if self._spend(account_id):
            return True
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            if self._spend(account_id):
                return True
            bucket = self._bucket(account_id, tps)
            chunk = max(1, tps // 20)
            for n in (chunk, 1) if chunk > 1 else (1,):
                if (await bucket.try_acquire(n)).granted:
                    self._local[account_id] = (n - 1, time.monotonic())
                    return True
            return False
