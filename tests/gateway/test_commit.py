"""Group commit: batching, acknowledgement after commit, failure isolation, back-pressure
and after-commit steps."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from gateway.store import queue
from gateway.store.commit import GroupCommit, WriterClosed
from gateway.store.messages import NewMessage


async def _owner(pool) -> int:
    return await pool.fetchval("SELECT id FROM partners WHERE kind = 'owner'")


def _msg(pid: int, i: int = 0, **kw) -> NewMessage:
    return NewMessage(partner_id=pid, origin="smpp", sender="S", destination=f"357990{i:05d}",
                      text=f"m{i}", **kw)


async def _store(conn, msgs: list[NewMessage]) -> list[NewMessage]:
    await queue.insert_and_enqueue(conn, msgs)
    return msgs


def _writer(pool, **kw) -> GroupCommit[NewMessage, NewMessage]:
    """An engine that stores messages (the message writer without billing)."""
    return GroupCommit(pool, _store, **kw)


async def test_many_producers_share_few_transactions(pool):
    pid = await _owner(pool)
    writer = _writer(pool, max_delay=0.005, max_rows=500)
    await writer.start()
    try:
        async def producer(k: int) -> None:
            for j in range(5):
                msg = _msg(pid, k * 10 + j)
                (out,) = await writer.submit([msg])
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
    writer = _writer(pool, max_delay=30.0, max_rows=50, flushers=1)
    await writer.start()
    try:
        await asyncio.wait_for(writer.submit([_msg(pid, 0)]), 10)
        assert writer.stats.batches == 1
        # One burst while idle: one transaction for all of it (the same turn of the loop).
        burst = [asyncio.ensure_future(writer.submit([_msg(pid, i)])) for i in range(1, 11)]
        await asyncio.wait_for(asyncio.gather(*burst), 10)
        assert writer.stats.batches == 2 and writer.stats.largest_batch == 10
        # While a batch is being written the next ones gather (up to max_rows), and go as
        # soon as that write ends: not after max_delay.
        first = asyncio.ensure_future(writer.submit([_msg(pid, 11)]))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(writer.submit([_msg(pid, i)])) for i in range(12, 72)]
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        assert writer.stats.rows == 72 and writer.stats.largest_batch == 50
        assert writer.stats.batches <= 2 + 3
    finally:
        await writer.stop()


async def test_not_acknowledged_before_commit(pool):
    pid = await _owner(pool)
    gate = asyncio.Event()
    inside = asyncio.Event()

    async def store(conn, msgs):
        await _store(conn, msgs)
        inside.set()
        await gate.wait()
        return msgs

    writer = GroupCommit(pool, store, max_delay=0.001)
    await writer.start()
    try:
        msg = _msg(pid)
        task = asyncio.create_task(writer.submit([msg]))
        await inside.wait()
        await asyncio.sleep(0.05)
        assert not task.done()
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", msg.id) == 0
        gate.set()
        assert await task == [msg]
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", msg.id) == 1
    finally:
        await writer.stop()


async def test_a_bad_request_fails_alone_and_leaves_no_rows(pool):
    pid = await _owner(pool)
    writer = _writer(pool, max_delay=0.02)
    await writer.start()
    try:
        good = [[_msg(pid, i)] for i in range(4)]
        bad = [_msg(pid, 100), _msg(pid, 101, parts=0)]  # parts CHECK fails the whole batch
        results = await asyncio.gather(
            *(writer.submit(g) for g in good), writer.submit(bad), return_exceptions=True
        )
    finally:
        await writer.stop()
    assert all(isinstance(r, list) for r in results[:4])
    assert isinstance(results[4], Exception)
    assert writer.stats.failed_batches >= 1
    ids = {r["id"] for r in await pool.fetch("SELECT id FROM messages")}
    assert ids == {g[0].id for g in good}   # none of the bad request, all of the good


async def test_a_failing_commit_fails_the_future_and_leaves_no_rows(pool):
    pid = await _owner(pool)

    async def broken(conn, msgs):
        await _store(conn, msgs)
        raise RuntimeError("billing is down")

    writer = GroupCommit(pool, broken)
    await writer.start()
    try:
        with pytest.raises(RuntimeError, match="billing is down"):
            await writer.submit([_msg(pid)])
    finally:
        await writer.stop()
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_stop_flushes_waiting_work_then_refuses(pool):
    pid = await _owner(pool)
    writer = _writer(pool, max_delay=0.05)
    await writer.start()
    tasks = [asyncio.create_task(writer.submit([_msg(pid, i)])) for i in range(10)]
    await asyncio.sleep(0)
    await writer.stop()
    assert [len(await t) for t in tasks] == [1] * 10
    assert await pool.fetchval("SELECT count(*) FROM messages") == 10
    with pytest.raises(WriterClosed):
        await writer.submit([_msg(pid)])


async def test_backpressure_bounds_pending_rows(pool):
    pid = await _owner(pool)
    gate = asyncio.Event()

    async def slow(conn, msgs):
        await gate.wait()
        return await _store(conn, msgs)

    writer = GroupCommit(pool, slow, flushers=1, max_rows=10, max_pending_rows=20,
                         max_delay=0.001)
    await writer.start()
    try:
        tasks = [asyncio.create_task(writer.submit([_msg(pid, i)])) for i in range(100)]
        await asyncio.sleep(0.1)
        # One batch is in flight; at most max_pending_rows wait behind it; the rest block.
        assert writer._pending_rows <= 20
        gate.set()
        await asyncio.gather(*tasks)
    finally:
        await writer.stop()
    assert await pool.fetchval("SELECT count(*) FROM messages") == 100


# The engine alone, on a table of its own. The unique constraint is checked at COMMIT, so a
# batch can fail after its commit function returned.
_ROWS = """CREATE TABLE gc_rows (
    item int NOT NULL, attempt text NOT NULL, txid bigint NOT NULL DEFAULT txid_current(),
    CONSTRAINT gc_rows_item UNIQUE (item) DEFERRABLE INITIALLY DEFERRED)"""


async def _write(conn, items: list[int], attempt: str) -> list[str]:
    await conn.executemany("INSERT INTO gc_rows (item, attempt) VALUES ($1, $2)",
                           [(i, attempt) for i in items])
    return [f"{attempt}:{i}" for i in items]


async def _rows(pool) -> list[tuple[int, str]]:
    return [(r["item"], r["attempt"])
            for r in await pool.fetch("SELECT item, attempt FROM gc_rows ORDER BY item")]


async def test_after_commit_steps_run_once_committed_before_the_answer(pool):
    await pool.execute(_ROWS)
    inside = asyncio.Event()
    gate = asyncio.Event()
    ran: list[tuple[list[int], bool]] = []
    task: asyncio.Task | None = None

    async def commit(conn, items, *, after_commit):
        results = await _write(conn, items, "first")
        after_commit.append(lambda: ran.append((items, task is not None and task.done())))
        inside.set()
        await gate.wait()
        return results

    engine = GroupCommit(pool, commit, with_after_commit=True)
    await engine.start()
    try:
        task = asyncio.create_task(engine.submit([1, 2]))
        await inside.wait()
        await asyncio.sleep(0.05)
        assert ran == []  # the step is registered, the transaction still open
        gate.set()
        assert await task == ["first:1", "first:2"]
    finally:
        await engine.stop()
    assert ran == [([1, 2], False)]  # once, after the commit, before the producer's answer
    assert await _rows(pool) == [(1, "first"), (2, "first")]


async def test_after_commit_steps_of_a_failed_transaction_never_run(pool):
    await pool.execute(_ROWS)
    ran: list[list[int]] = []

    async def commit(conn, items, *, after_commit):
        after_commit.append(lambda: ran.append(items))
        if 0 in items:
            raise RuntimeError("refused inside the transaction")
        return await _write(conn, items, "first")

    engine = GroupCommit(pool, commit, with_after_commit=True, max_delay=0.01)
    await engine.start()
    try:
        with pytest.raises(RuntimeError, match="refused inside"):
            await engine.submit([0])
        # Item 5 twice: the deferred unique check fails at COMMIT, after commit() returned.
        with pytest.raises(asyncpg.UniqueViolationError):
            await engine.submit([5, 5])
        # A batch of two requests, one bad: each is written again alone, with its own steps.
        results = await asyncio.gather(engine.submit([7]), engine.submit([0, 8]),
                                       return_exceptions=True)
    finally:
        await engine.stop()
    assert results[0] == ["first:7"] and isinstance(results[1], RuntimeError)
    assert ran == [[7]]
    assert await _rows(pool) == [(7, "first")]


async def test_a_failing_after_commit_step_is_logged_and_does_not_fail_the_batch(pool, caplog):
    await pool.execute(_ROWS)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("client gone")

    async def commit(conn, items, *, after_commit):
        after_commit.extend([broken, lambda: ran.append("next")])
        return await _write(conn, items, "first")

    engine = GroupCommit(pool, commit, with_after_commit=True, name="test-writer")
    await engine.start()
    try:
        with caplog.at_level(logging.ERROR, logger="herald.commit"):
            assert await engine.submit([1]) == ["first:1"]
    finally:
        await engine.stop()
    assert ran == ["next"]  # the steps after the failing one still ran
    assert await _rows(pool) == [(1, "first")]
    assert engine.stats.failed_batches == 0
    assert any("after_commit_failed writer=test-writer" in r.getMessage() and r.exc_info
               for r in caplog.records)
