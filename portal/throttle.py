"""Failed sign-in attempts, counted in Redis per account and per client address.

A fixed window: the first failure starts a counter that expires after
``window`` seconds; once it reaches the limit, sign-in for that account (or
from that address) is refused until the counter expires. Redis is shared by
every Herald process, so the limit holds across a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

_PREFIX = "herald:signin-failures:"


@dataclass(frozen=True, slots=True)
class Limit:
    attempts: int
    window: int  # seconds


ACCOUNT_LIMIT = Limit(attempts=5, window=15 * 60)
ADDRESS_LIMIT = Limit(attempts=20, window=15 * 60)


def account_key(portal_id: int, email: str) -> str:
    return f"{_PREFIX}account:{portal_id}:{email.strip().lower()}"


def address_key(address: str) -> str:
    return f"{_PREFIX}addr:{address}"


async def locked_for(client: aioredis.Redis, checks: list[tuple[str, Limit]]) -> int:
    """Seconds until sign-in is allowed again (0 when it is allowed now)."""
    pipe = client.pipeline(transaction=False)
    for key, _limit in checks:
        pipe.get(key)
        pipe.ttl(key)
    results = await pipe.execute()
    wait = 0
    for index, (_key, limit) in enumerate(checks):
        count, ttl = results[2 * index], results[2 * index + 1]
        if count is not None and int(count) >= limit.attempts:
            wait = max(wait, ttl if ttl and ttl > 0 else limit.window)
    return wait


# Count one event; the first one starts the window (EXPIRE NX needs Redis 7, this runs on 6.2).
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


async def _count(client: aioredis.Redis, key: str, limit: Limit) -> int:
    return int(await client.eval(_COUNT, 1, key, limit.window))


async def record_failure(client: aioredis.Redis, checks: list[tuple[str, Limit]]) -> None:
    for key, limit in checks:
        await _count(client, key, limit)


async def clear(client: aioredis.Redis, key: str) -> None:
    """Forget an account's failures after it signs in."""
    await client.delete(key)


async def allow(client: aioredis.Redis, key: str, limit: Limit) -> bool:
    """Count one use of ``key``; False once more than ``limit.attempts`` in the window."""
    return await _count(client, key, limit) <= limit.attempts


MAIL_LIMIT = Limit(attempts=5, window=15 * 60)  # e-mails one address may trigger


def mail_key(kind: str, value: str) -> str:
    return f"herald:mail-requests:{kind}:{value.strip().lower()}"
