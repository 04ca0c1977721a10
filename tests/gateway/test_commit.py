"""Group commit: batching, acknowledgement after commit, hooks, failure isolation."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

import pytest

from config.errors import HeraldError, Invalid
from gateway.commit import GroupCommitWriter, WriterClosed
from gateway.messages import NewMessage, Status


async def _owner(pool) -> int:
    return await pool.fetchval("SELECT id FROM partners WHERE kind = 'owner'")


def _msg(pid: int, i: int = 0, **kw) -> NewMessage:
    return NewMessage(partner_id=pid, origin="smpp", sender="S", destination=f"357990{i:05d}",
                      text=f"m{i}", **kw)


async def test_many_producers_share_few_transactions(pool):
    pid = await _owner(pool)
    writer = GroupCommitWriter(pool, max_delay=0.005, max_rows=500)
    await writer.start()
    try:
        async def producer(k: int) -> None:
            for j in range(5):
                msg = _msg(pid, k * 10 + j)
                (out,) = await writer.persist([msg])
                assert out == msg
                # Acknowledged means committed: another connection sees the row now.
                assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1",
                                           msg.id) == 1

        await asyncio.gather(*(producer(k) for k in range(100)))
    finally:
        await writer.stop()
    assert await pool.fetchval("SELECT count(*) FROM messages") == 500
    assert writer.stats.rows == 500
    assert writer.stats.batches < 500 / 4  # grouping happened
    assert writer.stats.largest_batch > 1


async def test_an_idle_writer_starts_at_once_and_a_busy_one_gathers(pool):
    pid = await _owner(pool)
    # A delay no test would sit through: an idle writer must not wait for it.
    writer = GroupCommitWriter(pool, max_delay=30.0, max_rows=50, flushers=1)
    await writer.start()
    try:
        await asyncio.wait_for(writer.persist([_msg(pid, 0)]), 10)
        assert writer.stats.batches == 1
        # One burst while idle: one transaction for all of it (the same turn of the loop).
        burst = [asyncio.ensure_future(writer.persist([_msg(pid, i)])) for i in range(1, 11)]
        await asyncio.wait_for(asyncio.gather(*burst), 10)
        assert writer.stats.batches == 2 and writer.stats.largest_batch == 10
        # While a batch is being written the next ones gather (up to max_rows), and go as
        # soon as that write ends: not after max_delay.
        first = asyncio.ensure_future(writer.persist([_msg(pid, 11)]))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(writer.persist([_msg(pid, i)])) for i in range(12, 72)]
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        assert writer.stats.rows == 72 and writer.stats.largest_batch == 50
        assert writer.stats.batches <= 2 + 3
    finally:
        await writer.stop()


async def test_not_acknowledged_before_commit(pool):
    pid = await _owner(pool)
    gate = asyncio.Event()
    inside = asyncio.Event()

    async def after(conn, accepted):
        inside.set()
        await gate.wait()

    writer = GroupCommitWriter(pool, after_insert=after, max_delay=0.001)
    await writer.start()
    try:
        msg = _msg(pid)
        task = asyncio.create_task(writer.persist([msg]))
        await inside.wait()
        await asyncio.sleep(0.05)
        assert not task.done()
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", msg.id) == 0
        gate.set()
        assert await task == [msg]
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", msg.id) == 1
    finally:
        await writer.stop()


async def test_charge_hook_commits_with_the_rows_and_rejects_per_message(pool):
    pid = await _owner(pool)
    await pool.execute("UPDATE partners SET balance = 1 WHERE id = $1", pid)
    price = Decimal("0.3")

    async def charge(conn, msgs):
        out = []
        for msg in msgs:
            ok = await conn.fetchval(
                "UPDATE partners SET balance = balance - $2 WHERE id = $1 AND balance >= $2"
                " RETURNING true", msg.partner_id, price)
            out.append(replace(msg, status=Status.BILLED, cost=price) if ok
                       else Invalid("insufficient balance"))
        return out

    writer = GroupCommitWriter(pool, before_insert=charge, max_delay=0.005)
    await writer.start()
    try:
        results = await asyncio.gather(*(writer.persist([_msg(pid, i, route=(5,))])
                                         for i in range(5)))
    finally:
        await writer.stop()
    flat = [r[0] for r in results]
    stored = [r for r in flat if isinstance(r, NewMessage)]
    rejected = [r for r in flat if isinstance(r, HeraldError)]
    assert len(stored) == 3 and len(rejected) == 2
    assert await pool.fetchval("SELECT balance FROM partners WHERE id = $1", pid) == Decimal("0.1")
    rows = await pool.fetch("SELECT status, cost FROM messages")
    assert len(rows) == 3 and {(r["status"], r["cost"]) for r in rows} == {("BILLED", price)}
    # Accepted messages with a route are queued in the same transaction.
    assert await pool.fetchval("SELECT count(*) FROM send_queue WHERE vendor_id = 5") == 3


async def test_a_bad_request_fails_alone_and_leaves_no_rows(pool):
    pid = await _owner(pool)
    writer = GroupCommitWriter(pool, max_delay=0.02)
    await writer.start()
    try:
        good = [[_msg(pid, i)] for i in range(4)]
        bad = [_msg(pid, 100), _msg(pid, 101, parts=0)]  # parts CHECK fails the whole batch
        results = await asyncio.gather(
            *(writer.persist(g) for g in good), writer.persist(bad), return_exceptions=True
        )
    finally:
        await writer.stop()
    assert all(isinstance(r, list) for r in results[:4])
    assert isinstance(results[4], Exception)
    assert writer.stats.failed_batches >= 1
    ids = {r["id"] for r in await pool.fetch("SELECT id FROM messages")}
    assert ids == {g[0].id for g in good}   # none of the bad request, all of the good


async def test_hook_failure_fails_the_future(pool):
    pid = await _owner(pool)

    async def broken(conn, msgs):
        raise RuntimeError("billing is down")

    writer = GroupCommitWriter(pool, before_insert=broken)
    await writer.start()
    try:
        with pytest.raises(RuntimeError, match="billing is down"):
            await writer.persist([_msg(pid)])
    finally:
        await writer.stop()
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_stop_flushes_waiting_work_then_refuses(pool):
    pid = await _owner(pool)
    writer = GroupCommitWriter(pool, max_delay=0.05)
    await writer.start()
    tasks = [asyncio.create_task(writer.persist([_msg(pid, i)])) for i in range(10)]
    await asyncio.sleep(0)
    await writer.stop()
    assert [len(await t) for t in tasks] == [1] * 10
    assert await pool.fetchval("SELECT count(*) FROM messages") == 10
    with pytest.raises(WriterClosed):
        await writer.persist([_msg(pid)])


async def test_backpressure_bounds_pending_rows(pool):
    pid = await _owner(pool)
    gate = asyncio.Event()

    async def slow(conn, accepted):
        await gate.wait()

    writer = GroupCommitWriter(pool, after_insert=slow, flushers=1, max_rows=10,
                               max_pending_rows=20, max_delay=0.001)
    await writer.start()
    try:
        tasks = [asyncio.create_task(writer.persist([_msg(pid, i)])) for i in range(100)]
        await asyncio.sleep(0.1)
        # One batch is in flight; at most max_pending_rows wait behind it; the rest block.
        assert writer._pending_rows <= 20
        gate.set()
        await asyncio.gather(*tasks)
    finally:
        await writer.stop()
    assert await pool.fetchval("SELECT count(*) FROM messages") == 100
