"""The message writer: price, then store, queue, record and debit in one transaction;
charged again under the lock when the payer moved; refusals per message."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from billing import pricing
from billing.charging import Charger, ChargeResult
from gateway.accept.writer import MessageWriter
from gateway.store.messages import NewMessage, Status
from tests.gateway.world import RU_MOBILE, SENDER, balance, make_world


def _msgs(world, n: int, *, mccmnc: str = "25001") -> list[NewMessage]:
    return [NewMessage(partner_id=world.partner_id, origin="api", sender=SENDER,
                       destination=RU_MOBILE, text=f"m{i}", mccmnc=mccmnc,
                       route=(world.sms_vendor,)) for i in range(n)]


async def _count(pool, table: str, partner_id: int) -> int:
    return await pool.fetchval(f"SELECT count(*) FROM {table} WHERE partner_id = $1", partner_id)


async def _write(pool, charger: Charger, *batches: list[NewMessage]) -> tuple[list, MessageWriter]:
    writer = MessageWriter(pool, charger, max_delay=0.01)
    await writer.start()
    try:
        return await asyncio.gather(*(writer.persist(b) for b in batches)), writer
    finally:
        await writer.stop()


async def test_a_batch_is_priced_stored_queued_and_charged_with_refusals_one_by_one(pool):
    world = await make_world(pool, balance="0.12")              # two messages at 0.05
    (outcomes, mixed), writer = await _write(pool, Charger(), _msgs(world, 3),
                                             _msgs(world, 1, mccmnc="20801"))  # no rate for France
    assert [type(o) for o in outcomes] == [NewMessage, NewMessage, ChargeResult]
    assert outcomes[2].code == pricing.INSUFFICIENT
    assert mixed[0].code == pricing.NO_RATE
    billed = outcomes[:2]
    assert all(m.status is Status.BILLED and m.cost == Decimal("0.05") for m in billed)
    rows = await pool.fetch("SELECT id, status, cost, charge_ref FROM messages")
    assert {(r["id"], r["status"], r["cost"], r["charge_ref"]) for r in rows} == {
        (m.id, "BILLED", Decimal("0.05"), str(m.id)) for m in billed}
    assert await pool.fetchval("SELECT count(*) FROM send_queue WHERE vendor_id = $1",
                               world.sms_vendor) == 2
    assert await _count(pool, "charges", world.partner_id) == 2
    assert await balance(pool, world.partner_id) == Decimal("0.02")
    assert writer.stats.retried_batches == 0


class _SpendAfterPricing(Charger):
    """Another payment lands between the unlocked pricing and the transaction."""

    def __init__(self, pool, partner_id: int) -> None:
        super().__init__()
        self.pool, self.partner_id, self.spent = pool, partner_id, False

    async def price(self, conn, requests, *, lock=False):
        priced = await super().price(conn, requests, lock=lock)
        if not lock and not self.spent:
            self.spent = True
            await self.pool.execute("UPDATE partners SET balance = balance - 0.10 WHERE id = $1",
                                    self.partner_id)
        return priced


async def test_a_balance_spent_meanwhile_has_the_batch_charged_again_under_the_lock(pool):
    world = await make_world(pool, balance="0.20")
    ((outcomes,), writer) = await _write(pool, _SpendAfterPricing(pool, world.partner_id),
                                         _msgs(world, 4))   # 0.05 each: all four looked paid
    assert writer.stats.retried_batches == 1
    assert [isinstance(o, NewMessage) for o in outcomes] == [True, True, False, False]
    assert outcomes[2].code == pricing.INSUFFICIENT
    assert await balance(pool, world.partner_id) == Decimal("0")
    # None of the first attempt's rows stayed: two of each, from the second.
    for table in ("messages", "charges"):
        assert await _count(pool, table, world.partner_id) == 2
    assert await pool.fetchval("SELECT count(*) FROM send_queue") == 2
    assert await pool.fetchval(
        "SELECT count(*) FROM transactions WHERE partner_id = $1 AND amount < 0",
        world.partner_id) == 1


async def test_billing_that_fails_fails_the_batch_and_stores_nothing(pool):
    world = await make_world(pool)

    class Down(Charger):
        async def price(self, conn, requests, *, lock=False):
            raise ConnectionError("billing is down")

    writer = MessageWriter(pool, Down())
    await writer.start()
    try:
        with pytest.raises(ConnectionError):
            await writer.persist(_msgs(world, 2))
    finally:
        await writer.stop()
    assert await _count(pool, "messages", world.partner_id) == 0
    assert await balance(pool, world.partner_id) == Decimal("100")
