"""SendWorker and record_receipt: queue, status, callback rows commit together."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from gateway.base.app import open_pool
from gateway.base.ratelimit import TokenBucket
from gateway.intake.smpp_accounts import create_account
from gateway.send import delivery
from gateway.send.delivery import Accepted, Failover, Rejected, Retry, SendWorker
from gateway.store import queue
from gateway.store.messages import (
    Event,
    NewMessage,
    ReceiptUpdate,
    Status,
    get_message,
    insert_messages,
)
from tests.gateway.world import make_world


async def _store(pool, n: int, route=(1, 2), **kw) -> list[NewMessage]:
    pid = await pool.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    msgs = [NewMessage(partner_id=pid, origin="api", sender="S", destination=f"3579900{i:04d}",
                       text=f"t{i}", status=Status.BILLED, route=route,
                       callback_url="http://127.0.0.1:9/cb", **kw) for i in range(n)]
    async with pool.acquire() as conn, conn.transaction():
        await insert_messages(conn, msgs)
        await queue.enqueue(conn, [(m.id, m.route) for m in msgs])
    return msgs


async def _statuses(pool) -> dict:
    return {r["id"]: r for r in await pool.fetch("SELECT * FROM messages")}


async def _callbacks(pool) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT order_key, body FROM callback_outbox ORDER BY id")
    return [(r["order_key"], json.loads(r["body"])["status"]) for r in rows]


async def test_outcomes_are_recorded_with_their_callbacks(pool):
    accepted, failover, rejected, flaky, expired = await _store(pool, 5)
    await pool.execute("UPDATE messages SET valid_until = now() - interval '1 minute'"
                       " WHERE id = $1", expired.id)
    tries: Counter = Counter()

    async def send(claim: queue.Claim):
        tries[claim.message_id] += 1
        mid = claim.message_id
        if mid == accepted.id:
            return Accepted("00AB01")
        if mid == failover.id:
            return Failover("down") if claim.vendor_id == 1 else Accepted("v2")
        if mid == rejected.id:
            return Rejected("unknown subscriber", "0x0B")
        if mid == flaky.id:
            if tries[mid] == 1:
                raise ConnectionError("bind lost")   # an exception is a retry
            return Retry("throttled", delay=0) if tries[mid] == 2 else Accepted("F")
        raise AssertionError("expired messages must not be sent")

    worker = SendWorker(pool, send, batch=10)
    for _ in range(6):
        await pool.execute("UPDATE send_queue SET not_before = now() WHERE claimed_by IS NULL")
        await worker.run_once()
    rows = await _statuses(pool)
    assert rows[accepted.id]["status"] == "SENT"
    assert (rows[accepted.id]["vendor_id"], rows[accepted.id]["vendor_message_key"]) == (1, "ab01")
    assert rows[accepted.id]["vendor_message_id"] == "00AB01"
    assert rows[failover.id]["status"] == "SENT" and rows[failover.id]["vendor_id"] == 2
    assert rows[rejected.id]["status"] == "FAILED"
    assert rows[rejected.id]["error_code"] == "0x0B"
    assert rows[flaky.id]["status"] == "SENT" and tries[flaky.id] == 3
    assert rows[expired.id]["status"] == "UNDELIVERED"
    assert await pool.fetchval("SELECT count(*) FROM send_queue") == 0
    assert sorted(await _callbacks(pool)) == sorted([
        (str(accepted.id), "SENT"), (str(failover.id), "SENT"), (str(rejected.id), "FAILED"),
        (str(flaky.id), "SENT"), (str(expired.id), "UNDELIVERED"),
    ])
    # The receipt comes back on the vendor's id and reaches the client too.
    async with pool.acquire() as conn:
        done = await delivery.record_receipt(conn, 2, "V2", Event.DELIVERED)
        assert done.id == failover.id and done.status is Status.DELIVERED
        assert await delivery.record_receipt(conn, 2, "v2", Event.DELIVERED) is None
        assert await delivery.record_receipt(conn, 2, "nope", Event.DELIVERED) is None
        # hex 0xAB01 answered, decimal 43777 reported: still the same message
        hexed = await delivery.record_receipt(conn, 1, "43777", Event.UNDELIVERED)
        assert hexed.id == accepted.id and hexed.status is Status.UNDELIVERED
    assert (await _callbacks(pool))[-2:] == [(str(failover.id), "DELIVERED"),
                                             (str(accepted.id), "UNDELIVERED")]


async def test_retries_exhausted_fail_over_then_fail(pool):
    (msg,) = await _store(pool, 1, route=(1, 2))
    seen: list[int] = []

    async def send(claim):
        seen.append(claim.vendor_id)
        return Retry("timeout", delay=0)

    worker = SendWorker(pool, send, max_attempts=2)
    for _ in range(5):
        await worker.run_once()
    assert seen == [1, 1, 2, 2]
    got = await get_message(pool, msg.id)
    assert got.status is Status.FAILED and "after 2 attempts" in got.error_text
    assert await _callbacks(pool) == [(str(msg.id), "FAILED")]


async def test_two_workers_in_two_processes_send_each_message_once(db_url, redis):
    pools = [await open_pool(db_url, 4), await open_pool(db_url, 4)]
    try:
        msgs = await _store(pools[0], 120, route=(7,))
        sent: list = []

        async def send(claim):
            sent.append(claim.message_id)
            await asyncio.sleep(0)
            return Accepted(str(claim.message_id))

        # Both nodes share the vendor's bucket in Redis.
        workers = [
            SendWorker(p, send, vendor_id=7, batch=10, poll_interval=0.01,
                       bucket=TokenBucket(redis, "vendor:7", rate=2000, burst=50))
            for p in pools
        ]
        for w in workers:
            await w.start()
        try:
            async with asyncio.timeout(20):
                while True:
                    left = await pools[0].fetchval("SELECT count(*) FROM send_queue")
                    if not left:
                        break
                    await asyncio.sleep(0.02)
        finally:
            for w in workers:
                await w.stop()
        assert sorted(sent) == sorted(m.id for m in msgs)
        assert await pools[0].fetchval("SELECT count(*) FROM messages WHERE status = 'SENT'") \
            == 120
    finally:
        for p in pools:
            await p.close()


async def test_final_message_in_queue_is_dropped_unsent(pool):
    (msg,) = await _store(pool, 1, valid_until=datetime.now(UTC) + timedelta(hours=1))
    await pool.execute("UPDATE messages SET status = 'DELIVERED' WHERE id = $1", msg.id)

    async def send(claim):
        raise AssertionError("must not send")

    assert await SendWorker(pool, send).run_once() == 1
    assert await pool.fetchval("SELECT count(*) FROM send_queue") == 0


async def test_receipt_writer_groups_receipts_and_queues_callbacks(pool):
    msgs = await _store(pool, 40, route=(3,))

    async def send(claim):
        return Accepted(f"{claim.message.destination[-4:]}")  # "0000".."0039"

    assert await SendWorker(pool, send, batch=100).run_once() == 40
    writer = delivery.ReceiptWriter(pool, max_delay=0.01)
    await writer.start()
    try:
        results = await asyncio.gather(*(
            writer.record(ReceiptUpdate(3, f"{i:04d}", Event.DELIVERED)) for i in range(40)
        ), writer.record(ReceiptUpdate(3, "0000", Event.UNDELIVERED)))
    finally:
        await writer.stop()
    assert [r.id for r in results[:40]] == [x.id for x in msgs]
    assert results[40] is None                       # late: already DELIVERED
    assert writer.stats.batches < 41                 # receipts shared transactions
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'DELIVERED'") == 40
    statuses = Counter(s for _, s in await _callbacks(pool))
    assert statuses == {"SENT": 40, "DELIVERED": 40}



class _Outbox:
    """This process's SMPP outbox as the worker and the writer see it: a receiver of
    ``bound`` is here."""

    worker_id = "this-process"
    lease = 30.0

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.handed: list[tuple[int, object]] = []
        self.notified: list[int | None] = []

    def takes(self, account_id: int) -> bool:
        return account_id == self.bound

    def hand_over(self, rows) -> None:
        self.handed += rows

    def notify(self, account_id: int | None = None) -> None:
        self.notified.append(account_id)


async def test_receipts_for_a_client_bound_here_are_handed_over_once_committed(pool):
    """The send worker and the receipt writer write a bound client's receipts claimed by
    this process's dispatcher and hand them over after the commit; other clients' wait
    in the outbox, and the dispatcher is told of them."""
    world = await make_world(pool)
    async with pool.acquire() as conn:
        here = await create_account(conn, world.partner_id, "here", "secret1", user_id=world.user_id)
        away = await create_account(conn, world.partner_id, "away", "secret1", user_id=world.user_id)
    rejected, delivered = await _store(pool, 2, route=(3,), smpp_account_id=here.id,
                                       registered_delivery=1)
    (elsewhere,) = await _store(pool, 1, route=(3,), smpp_account_id=away.id,
                                registered_delivery=1)
    outbox = _Outbox(here.id)

    async def send(claim):
        if claim.message_id == rejected.id:
            return Rejected("unknown subscriber", "0x0B")
        return Accepted(str(claim.message_id))

    await _run_started(pool, [rejected, delivered, elsewhere], send, outbox=outbox)
    assert [row.receipted_message_id for _, row in outbox.handed] == [str(rejected.id)]
    writer = delivery.ReceiptWriter(pool, outbox=outbox)
    await writer.start()
    try:
        for msg in (delivered, elsewhere):
            assert await writer.record(ReceiptUpdate(3, str(msg.id), Event.DELIVERED)) is not None
    finally:
        await writer.stop()
    assert [row.receipted_message_id for _, row in outbox.handed] == [str(rejected.id),
                                                                       str(delivered.id)]
    assert outbox.notified == [away.id]
    rows = {r["receipted_message_id"]: r for r in await pool.fetch(
        "SELECT id, receipted_message_id, claimed_by FROM smpp_outbox")}
    assert {rows[row.receipted_message_id]["id"] for _, row in outbox.handed} == \
        {i for i, _ in outbox.handed}
    assert rows[str(delivered.id)]["claimed_by"] == "this-process"
    assert rows[str(elsewhere.id)]["claimed_by"] is None


async def _run_started(pool, msgs, send, **kw) -> None:
    worker = SendWorker(pool, send, batch=10, poll_interval=0.01, max_attempts=3,
                        backoff_base=0.0, backoff_cap=0.0, **kw)
    await worker.start()
    try:
        async with asyncio.timeout(20):
            while True:
                left = await pool.fetchval(
                    "SELECT count(*) FROM send_queue WHERE message_id = ANY($1)", [m.id for m in msgs])
                if not left:
                    break
                await asyncio.sleep(0.02)
    finally:
        await worker.stop()


async def test_started_worker_records_the_same_with_start_as_with_send(pool):
    """The task-free ``start`` path ends every message as the ``send`` path does."""
    kinds = ["ok", "failover", "rejected", "flaky", "expired", "stubborn", "raises", "ok"]
    ends = {}
    for with_start in (False, True):
        msgs = await _store(pool, len(kinds), route=(1, 2))
        kind = {m.id: k for m, k in zip(msgs, kinds, strict=True)}
        await pool.execute("UPDATE messages SET valid_until = now() - interval '1 minute'"
                           " WHERE id = ANY($1)", [m.id for m in msgs if kind[m.id] == "expired"])
        tries: Counter = Counter()

        async def send(claim: queue.Claim, kind=kind, tries=tries):
            tries[claim.message_id] += 1
            k = kind[claim.message_id]
            if k == "ok":
                return Accepted(f"id-{claim.message.destination}")
            if k == "failover":
                return Failover("down") if claim.vendor_id == 1 else Accepted("v2")
            if k == "rejected":
                return Rejected("unknown subscriber", "0x0B")
            if k == "flaky":
                if tries[claim.message_id] == 1:
                    raise ConnectionError("bind lost")
                return Accepted("F")
            if k == "stubborn":
                return Retry("throttled", delay=0)
            if k == "raises":
                raise RuntimeError("always")
            raise AssertionError("expired messages must not be sent")

        async def start(claim: queue.Claim, send=send):
            future = asyncio.get_running_loop().create_future()
            try:
                future.set_result(await send(claim))
            except ConnectionError as exc:
                future.set_exception(exc)  # failing after the write, not before
            return future

        await _run_started(pool, msgs, send, start=start if with_start else None)
        rows = await _statuses(pool)
        ends[with_start] = [
            (kinds[i], rows[m.id]["status"], rows[m.id]["vendor_id"],
             rows[m.id]["vendor_message_id"] and rows[m.id]["vendor_message_id"].replace(
                 m.destination, "D"), rows[m.id]["error_code"], rows[m.id]["error_text"],
             tries[m.id])
            for i, m in enumerate(msgs)
        ]
    assert ends[True] == ends[False]
    assert [e[1] for e in ends[True]] == [
        "SENT", "SENT", "FAILED", "SENT", "UNDELIVERED", "FAILED", "FAILED", "SENT"]
