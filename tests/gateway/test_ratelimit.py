"""Redis token buckets: two nodes together never exceed the rate."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.base.ratelimit import TokenBucket, TpsLimiter


def _max_excess(times_us: list[int], rate: float, burst: float) -> float:
    """The largest (grants in [t_i, t_j]) - (burst + rate * (t_j - t_i)); ≤ 0 when obeyed."""
    times = sorted(times_us)
    worst = float("-inf")
    for i in range(len(times)):
        for j in range(i, len(times)):
            allowed = burst + rate * (times[j] - times[i]) / 1_000_000
            worst = max(worst, (j - i + 1) - allowed)
    return worst


async def test_two_nodes_share_one_rate(redis_url):
    rate, burst = 200.0, 10.0
    nodes = [aioredis.from_url(redis_url), aioredis.from_url(redis_url)]
    try:
        await nodes[0].flushdb()
        buckets = [TokenBucket(r, "vendor:1", rate=rate, burst=burst) for r in nodes]
        grants: dict[int, list[int]] = {0: [], 1: []}
        stop = asyncio.Event()

        async def sender(node: int) -> None:
            while not stop.is_set():
                grants[node].append(await buckets[node].acquire())

        tasks = [asyncio.create_task(sender(i % 2)) for i in range(8)]
        await asyncio.sleep(0.8)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for r in nodes:
            await r.aclose()
    every = grants[0] + grants[1]
    assert grants[0] and grants[1]
    assert len(every) > burst            # it did refill and grant beyond the first burst
    # Judged on Redis's own clock, not on how fast this test ran.
    assert _max_excess(every, rate, burst) <= 1e-6
    span_s = (max(every) - min(every)) / 1_000_000
    assert len(every) <= burst + rate * span_s + 1e-6


async def test_try_acquire_and_wait_hint(redis):
    bucket = TokenBucket(redis, "t", rate=10, burst=3)
    got = [await bucket.try_acquire() for _ in range(4)]
    assert [g.granted for g in got] == [True, True, True, False]
    assert 0 < got[3].wait_s <= 0.1 + 1e-6
    with pytest.raises(ValueError):
        await bucket.try_acquire(4)


async def test_acquire_several_tokens_waits_for_refill(redis):
    bucket = TokenBucket(redis, "multi", rate=50, burst=5)
    first = await bucket.acquire(5)
    second = await bucket.acquire(5)
    # Five tokens at 50/s take 100 ms to come back, by Redis's clock.
    assert second - first >= 100_000 - 1_000


async def test_per_account_limiter(redis):
    limiter = TpsLimiter(redis, prefix="smpp")
    answers = [await limiter.throttled(42, tps=5) for _ in range(7)]
    assert answers == [False] * 5 + [True] * 2
    assert await limiter.throttled(43, tps=5) is False   # accounts are independent
    assert await limiter.throttled(42, tps=0) is False   # 0 means no limit
