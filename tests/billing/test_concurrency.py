"""Thousands of concurrent charges from many connections against one balance never overdraw it."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from accounts.tenancy import owner_scope
from billing.charging import Charger, refund
from billing.pricing import ChargeRequest
from tests.billing.conftest import give_plan, make_partner

D = Decimal


async def _setup(pool, *, balance: str, rate: str, credit_limit: str = "0") -> int:
    async with pool.acquire() as conn:
        owner = await owner_scope(conn)
        client = await make_partner(conn, owner, owner.partner_id, "client", "Busy", balance=balance,
                                    credit_limit=credit_limit)
        await give_plan(conn, owner, client.id, {"250": rate})
        return client.id


def _batches(requests: list[ChargeRequest], rng: random.Random) -> list[list[ChargeRequest]]:
    batches, i = [], 0
    while i < len(requests):
        size = rng.randint(1, 25)
        batches.append(requests[i:i + size])
        i += size
    return batches


async def _run(pool, batches, charger: Charger, workers: int = 10):
    queue: asyncio.Queue = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    results = []

    async def worker():
        while not queue.empty():
            batch = queue.get_nowait()
            async with pool.acquire() as conn:
                results.extend(await charger.charge(conn, batch))

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results


async def test_concurrent_charges_stop_at_the_last_cent(pool):
    client_id = await _setup(pool, balance="500.00", rate="0.37")
    rng = random.Random(7)
    requests = [ChargeRequest(client_id, None, "sms", "25001", 1, None, "api", f"m{i}") for i in range(3000)]
    results = await _run(pool, _batches(requests, rng), Charger())
    accepted = [r for r in results if r.ok]
    assert len(results) == 3000
    assert len(accepted) == 1351                       # floor(500 / 0.37)
    assert all(r.code == "insufficient_balance" for r in results if not r.ok)
    async with pool.acquire() as conn:
        bal = await conn.fetchval("SELECT balance FROM partners WHERE id = $1", client_id)
        ledger_total = await conn.fetchval("SELECT sum(amount) FROM transactions WHERE partner_id = $1", client_id)
        charged = await conn.fetchval("SELECT sum(amounts[1]) FROM charges WHERE partner_id = $1", client_id)
    assert bal == D("500.00") - 1351 * D("0.37") == D("0.13")
    assert ledger_total == bal
    assert charged == sum(r.amount for r in accepted)


async def test_concurrent_charges_refunds_and_multipart_keep_the_books_exact(pool):
    client_id = await _setup(pool, balance="100.00", rate="0.013", credit_limit="5")
    rng = random.Random(11)
    requests = [ChargeRequest(client_id, None, "sms", "25001", rng.randint(1, 4), None, "campaign", f"r{i}")
                for i in range(4000)]
    charger = Charger()
    results = await _run(pool, _batches(requests, rng), charger)
    accepted = [r for r in results if r.ok]
    to_refund = [r.ref for r in accepted[::3]]

    async def refund_some(refs):
        async with pool.acquire() as conn:
            return await refund(conn, refs)

    refunded = await asyncio.gather(*(refund_some(to_refund[i:i + 50]) for i in range(0, len(to_refund), 50)),
                                    *(refund_some(to_refund[i:i + 70]) for i in range(0, len(to_refund), 70)))
    assert sum(refunded) == len(to_refund)              # each refunded exactly once
    kept = sum((r.amount for r in accepted if r.ref not in set(to_refund)), D(0))
    async with pool.acquire() as conn:
        bal = await conn.fetchval("SELECT balance FROM partners WHERE id = $1", client_id)
        ledger_total = await conn.fetchval("SELECT sum(amount) FROM transactions WHERE partner_id = $1", client_id)
    assert bal == D("100.00") - kept
    assert bal >= D("-5")
    assert ledger_total == bal
