"""The send queue: concurrent claims by two processes, leases, retries, failover."""

from __future__ import annotations

import asyncio
import uuid

from gateway.base.app import open_pool
from gateway.store import queue
from gateway.store.messages import NewMessage, Status, insert_messages


async def _store(conn, n: int, route=(1,)) -> list[uuid.UUID]:
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    msgs = [NewMessage(partner_id=pid, origin="api", sender="S", destination=f"3579900{i:04d}",
                       status=Status.BILLED, route=tuple(route)) for i in range(n)]
    await insert_messages(conn, msgs)
    await queue.enqueue(conn, [(x.id, x.route) for x in msgs])
    return [x.id for x in msgs]


def test_backoff_is_exponential_capped_and_jittered():
    assert queue.backoff(0, base=1, rand=lambda: 1.0) == 1
    assert queue.backoff(3, base=1, rand=lambda: 1.0) == 8
    assert queue.backoff(30, base=1, cap=60, rand=lambda: 1.0) == 60
    assert queue.backoff(3, base=1, rand=lambda: 0.25) == 2
    assert queue.backoff(3, base=1, rand=lambda: 0.0) == 0


async def test_two_processes_never_claim_the_same_message(db_url):
    # Two pools stand for two Herald processes on one database.
    pools = [await open_pool(db_url, 4), await open_pool(db_url, 4)]
    try:
        async with pools[0].acquire() as c:
            ids = await _store(c, 600)
        got: dict[str, list[uuid.UUID]] = {}

        async def worker(pool, name: str) -> None:
            mine = got.setdefault(name, [])
            while True:
                async with pool.acquire() as c, c.transaction():
                    claims = await queue.claim(c, name, 7)
                    if not claims:
                        return
                    mine.extend(cl.message_id for cl in claims)
                    for cl in claims:
                        assert cl.message is not None and cl.message.id == cl.message_id
                        assert await queue.complete(c, name, cl.message_id)

        await asyncio.gather(*(worker(pools[i % 2], f"w{i}") for i in range(6)))
        claimed = [x for v in got.values() for x in v]
        assert len(claimed) == len(set(claimed)) == 600
        assert set(claimed) == set(ids)
        assert sum(1 for name in got if got[name]) >= 2  # the work was really shared
        async with pools[1].acquire() as c:
            assert await queue.depth(c) == 0
    finally:
        for p in pools:
            await p.close()


async def test_lease_expiry_returns_work_and_stale_worker_cannot_complete(conn):
    ids = await _store(conn, 3)
    first = await queue.claim(conn, "dead", 10, lease=0.2)
    assert {c.message_id for c in first} == set(ids)
    assert all(c.attempt == 1 for c in first)
    assert await queue.claim(conn, "other", 10) == []   # leased
    # Time passes: make the lease end in the past rather than sleeping.
    await conn.execute("UPDATE send_queue SET not_before = now() - interval '1 second'")
    again = await queue.claim(conn, "other", 10)
    assert {c.message_id for c in again} == set(ids)
    assert all(c.attempt == 2 for c in again)
    assert not await queue.complete(conn, "dead", ids[0])   # no longer its row
    assert await queue.complete(conn, "other", ids[0])
    assert await queue.depth(conn) == 2
    assert await queue.extend_lease(conn, "dead", ids[1:], 60) == 0   # not its rows any more
    assert await queue.extend_lease(conn, "other", ids[1:], 60) == 2
    assert await conn.fetchval(
        "SELECT bool_and(not_before > now() + interval '59 seconds') FROM send_queue")


async def test_lease_expiry_in_real_time(db_url):
    pool = await open_pool(db_url, 2)
    try:
        async with pool.acquire() as c:
            await _store(c, 1)
            assert len(await queue.claim(c, "a", 5, lease=0.3)) == 1
            assert await queue.claim(c, "b", 5) == []
            await asyncio.sleep(0.4)
            assert len(await queue.claim(c, "b", 5)) == 1
    finally:
        await pool.close()


async def test_retry_later_failover_fail_and_vendor_filter(conn):
    (a,) = await _store(conn, 1, route=(10, 20))
    (b,) = await _store(conn, 1, route=(20,))
    assert [c.message_id for c in await queue.claim(conn, "w", 5, vendor_id=20)] == [b]
    claims = await queue.claim(conn, "w", 5, vendor_id=10)
    assert [c.message_id for c in claims] == [a] and claims[0].route == (10, 20)
    # retry: not claimable until the backoff has passed
    assert await queue.retry_later(conn, "w", a, 60, error="throttled")
    assert await queue.claim(conn, "w", 5) == []
    await conn.execute("UPDATE send_queue SET not_before = now() WHERE message_id = $1", a)
    (c,) = await queue.claim(conn, "w", 5, vendor_id=10)
    assert c.attempt == 2
    moved = await queue.failover(conn, "w", a, error="vendor down")
    assert moved is not None and moved.vendor_id == 20 and moved.position == 1
    assert moved.attempt == 0
    (c,) = await queue.claim(conn, "w", 5, vendor_id=20)
    assert c.message_id == a and c.vendor_id == 20
    assert await queue.failover(conn, "w", a) is None    # route exhausted
    assert await queue.fail(conn, "w", a)
    assert await queue.release(conn, "w", [b]) == 1
    assert [x.message_id for x in await queue.claim(conn, "x", 5)] == [b]
    assert await queue.depth(conn, 20) == 1
