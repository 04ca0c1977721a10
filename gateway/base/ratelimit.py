"""Token buckets in Redis, shared by every Herald process.

A vendor accepts so many messages per second (TPS) over all our binds, and an
SMPP or API account may send only so many; with several Herald processes the
count must be shared, so the bucket lives in Redis and is updated by one Lua
script (atomic: Redis runs a script with nothing interleaved). The script reads
the clock with Redis ``TIME``, so every process uses the same clock and
refills cannot be double counted by skewed hosts.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per
second; taking ``n`` tokens succeeds only when ``n`` are there. Over any
interval of length T the grants therefore total at most ``burst + rate * T``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import redis.asyncio as aioredis

KEY_PREFIX = "herald:tb:"

# KEYS[1] = bucket; ARGV = rate (tokens/s), burst, n, ttl (ms).
# Returns {granted 0/1, now (µs, Redis TIME), wait (µs until n tokens would be there)}.
_LUA = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
    tokens = burst
    ts = now
end
if now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
    ts = now
end
local granted = 0
local wait = 0
if tokens >= n then
    tokens = tokens - n
    granted = 1
else
    wait = math.ceil((n - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens),
           'ts', string.format('%.0f', ts))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {granted, now, wait}
"""


@dataclass(frozen=True, slots=True)
class Grant:
    granted: bool
    at_us: int        # Redis TIME when the script ran, microseconds since the epoch
    wait_s: float     # when not granted: seconds until the tokens would be there


class TokenBucket:
    """One named bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, redis: aioredis.Redis, name: str, *, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.redis = redis
        self.key = KEY_PREFIX + name
        self.rate = rate
        self.burst = burst
        # Long enough that an idle bucket has refilled before it is forgotten.
        self._ttl_ms = max(1000, math.ceil(burst / rate * 2000))
        self._script = redis.register_script(_LUA)

    async def try_acquire(self, n: float = 1) -> Grant:
        """Take ``n`` tokens if they are there now; never waits."""
        if n > self.burst:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.burst}")
        granted, at_us, wait_us = await self._script(
            keys=[self.key], args=[self.rate, self.burst, n, self._ttl_ms]
        )
        return Grant(bool(granted), int(at_us), int(wait_us) / 1_000_000)

    async def acquire(self, n: float = 1) -> int:
        """Wait until ``n`` tokens are granted; returns the grant's Redis time (µs)."""
        while True:
            grant = await self.try_acquire(n)
            if grant.granted:
                return grant.at_us
            # Others may take the tokens first; then we simply try again.
            await asyncio.sleep(max(grant.wait_s, 0.0005))


class TpsLimiter:
    """Per-account rate limits: ``throttled(account, tps)`` says yes or no, at once.

    The bucket of each account holds one second's worth (burst = tps), so an
    account may send its whole second at once but never more than ``tps`` on
    average. Limits are read per call, so a changed limit applies at once.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str = "account") -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_LUA)

    async def throttled(
        self, account: int | str, tps: float, n: int = 1, *, burst: float | None = None
    ) -> bool:
        """True if the account is over its limit now (the caller refuses the message).

        ``burst`` (default: one second's worth) lets a caller that takes many
        tokens at once (an HTTP request of 700 messages) hold a bigger bucket.
        """
        if tps <= 0:
            return False  # no limit configured
        burst = max(1.0, float(tps) if burst is None else float(burst))
        ttl_ms = max(1000, math.ceil(burst / tps * 2000))
        granted, _, _ = await self._script(
            keys=[f"{KEY_PREFIX}{self.prefix}:{account}"], args=[tps, burst, n, ttl_ms]
        )
        return not granted
