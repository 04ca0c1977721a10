"""Charging without the payers' lock: the same books as under it, and a stale read never charges."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.tenancy import load_scope, owner_scope
from billing import packs
from billing.charging import Charger
from billing.errors import StaleSnapshot
from billing.pricing import ChargeRequest
from tests.billing.conftest import balance, give_plan, ledger_sum, make_partner

D = Decimal
NOW = datetime.now(UTC)


def msg(partner_id: int, ref: str, *, parts: int = 1) -> ChargeRequest:
    return ChargeRequest(partner_id, None, "sms", "25001", parts, None, "api", ref)


async def _client(conn, name: str, *, balance: str = "10", rate: str = "0.10", with_pack: bool = False,
                  under_reseller: bool = False) -> int:
    owner = await owner_scope(conn)
    parent = owner.partner_id
    if under_reseller:
        reseller = await make_partner(conn, owner, owner.partner_id, "reseller", f"{name} R", balance="50")
        await give_plan(conn, owner, reseller.id, {"250": "0.04"})
        parent = reseller.id
        seller = await load_scope(conn, reseller.id)
    else:
        seller = owner
    client = await make_partner(conn, seller, parent, "client", name, balance=balance)
    await give_plan(conn, seller, client.id, {"250": rate})
    if with_pack:
        pack = await packs.create_pack(conn, seller, packs.NewPack(
            name=f"{name} pack", channel="sms", message_count=3, price=D("0"), validity_days=7, public=True))
        await packs.purchase_pack(conn, await load_scope(conn, client.id), client.id, pack.id, NOW)
    return client.id


async def _unlocked(pool, charger: Charger, requests: list[ChargeRequest]):
    async with pool.acquire() as conn, conn.transaction():
        pending = await charger.price(conn, requests)
        results = pending.results()
        assert await conn.fetchval("SELECT count(*) FROM charges WHERE ref = ANY($1::text[])",
                                   [r.ref for r in requests]) == 0  # record writes them
        await pending.record(conn)
        linked = dict(await conn.fetch("SELECT ref, transaction_id FROM charges WHERE ref = ANY($1::text[])",
                                       [r.ref for r in requests]))
    assert pending.ledger_ids == {ref: tx for ref, tx in linked.items() if tx is not None}
    assert {r.ref for r in results if r.ok} == set(linked)
    return results


@pytest.mark.parametrize("under_reseller", [False, True])
async def test_unlocked_charge_keeps_the_same_books_as_the_locked_one(pool, under_reseller):
    async with pool.acquire() as conn:
        locked_id = await _client(conn, "Locked", with_pack=True, under_reseller=under_reseller)
        free_id = await _client(conn, "Unlocked", with_pack=True, under_reseller=under_reseller)
    charger = Charger()
    sizes = [1, 2, 1, 3, 1, 1]
    async with pool.acquire() as conn:
        locked = await charger.charge(conn, [msg(locked_id, f"l{i}", parts=p) for i, p in enumerate(sizes)])
    free = await _unlocked(pool, charger, [msg(free_id, f"u{i}", parts=p) for i, p in enumerate(sizes)])

    def shape(results):
        return [(r.ok, r.amount, r.pack_id is not None, r.code) for r in results]

    assert shape(free) == shape(locked)
    assert any(r.pack_id for r in free) and any(r.amount for r in free)
    async with pool.acquire() as conn:
        assert await balance(conn, free_id) == await balance(conn, locked_id) < D("10")
        assert await ledger_sum(conn, free_id) == await balance(conn, free_id)
        if under_reseller:  # each client's reseller paid its own rate, the same in both cases
            parents = [await conn.fetchval("SELECT parent_id FROM partners WHERE id = $1", pid)
                       for pid in (locked_id, free_id)]
            spent = [D("50") - await balance(conn, p) for p in parents]
            assert spent[0] == spent[1] > 0
            assert [await ledger_sum(conn, p) for p in parents] == [await balance(conn, p) for p in parents]
        remaining = await conn.fetch(
            "SELECT partner_id, remaining FROM pack_subscriptions WHERE partner_id = ANY($1::bigint[])",
            [locked_id, free_id])
        assert len({r["remaining"] for r in remaining}) == 1


async def test_a_balance_spent_meanwhile_makes_the_batch_stale_and_charges_nothing(pool):
    async with pool.acquire() as conn:
        client_id = await _client(conn, "Racer", balance="1.00")
    charger = Charger()
    async with pool.acquire() as a, pool.acquire() as b:
        tx = a.transaction()
        await tx.start()
        pending = await charger.price(a, [msg(client_id, f"a{i}") for i in range(8)])
        results = pending.results()
        assert all(r.ok for r in results)               # 0.80 of 1.00, as the unlocked read saw it
        await charger.charge(b, [msg(client_id, f"b{i}") for i in range(5)])  # 0.50 spent meanwhile
        with pytest.raises(StaleSnapshot):
            await pending.record(a)
        await tx.rollback()
        assert await balance(a, client_id) == D("0.50")
        assert await a.fetchval("SELECT count(*) FROM charges WHERE partner_id = $1", client_id) == 5
        assert await ledger_sum(a, client_id) == D("0.50")


async def test_funds_that_still_cover_the_debit_let_the_batch_through(pool):
    async with pool.acquire() as conn:
        client_id = await _client(conn, "Roomy", balance="5.00")
    charger = Charger()
    async with pool.acquire() as a, pool.acquire() as b, a.transaction():
        pending = await charger.price(a, [msg(client_id, f"a{i}") for i in range(8)])
        await charger.charge(b, [msg(client_id, f"b{i}") for i in range(5)])
        await pending.record(a)
    async with pool.acquire() as conn:
        assert await balance(conn, client_id) == D("3.70")
        assert await ledger_sum(conn, client_id) == D("3.70")


async def test_a_payer_blocked_meanwhile_makes_the_batch_stale(pool):
    async with pool.acquire() as conn:
        client_id = await _client(conn, "Blocked")
    charger = Charger()
    async with pool.acquire() as a, pool.acquire() as b:
        tx = a.transaction()
        await tx.start()
        pending = await charger.price(a, [msg(client_id, "a")])
        await b.execute("UPDATE partners SET status = 'blocked' WHERE id = $1", client_id)
        with pytest.raises(StaleSnapshot):
            await pending.record(a)
        await tx.rollback()
        # Under the lock the same batch is refused, as for any blocked partner.
        (res,) = await charger.charge(a, [msg(client_id, "a")])
        assert not res.ok and res.code == "partner_blocked"


@pytest.mark.parametrize("how", ["used", "cancelled"])
async def test_a_pack_used_up_or_cancelled_meanwhile_makes_the_batch_stale(pool, how):
    async with pool.acquire() as conn:
        client_id = await _client(conn, f"Pack {how}", with_pack=True)
    charger = Charger()
    async with pool.acquire() as a, pool.acquire() as b:
        tx = a.transaction()
        await tx.start()
        pending = await charger.price(a, [msg(client_id, "a", parts=2)])
        results = pending.results()
        assert results[0].pack_id is not None
        if how == "used":
            await charger.charge(b, [msg(client_id, "b", parts=2)])
        else:
            # As if cancel_subscription had committed between the unlocked read and the
            # batch's first insert (after that, its partner lock waits for the batch).
            await b.execute("UPDATE pack_subscriptions SET canceled_at = now() WHERE id = $1",
                            results[0].pack_id)
        with pytest.raises(StaleSnapshot):
            await pending.record(a)
        await tx.rollback()
    async with pool.acquire() as conn:
        assert await ledger_sum(conn, client_id) == await balance(conn, client_id)


async def test_concurrent_unlocked_charges_with_the_locked_retry_stop_at_the_last_cent(pool):
    async with pool.acquire() as conn:
        client_id = await _client(conn, "Busy", balance="500.00", rate="0.37")
    rng = random.Random(3)
    requests = [msg(client_id, f"m{i}") for i in range(3000)]
    batches, i = [], 0
    while i < len(requests):
        size = rng.randint(1, 25)
        batches.append(requests[i:i + size])
        i += size
    charger = Charger()
    results: list = []

    async def worker(todo: list) -> None:
        while todo:
            batch = todo.pop()
            try:
                results.extend(await _unlocked(pool, charger, batch))
            except StaleSnapshot:  # what the message writer does: charge again under the lock
                async with pool.acquire() as conn:
                    results.extend(await charger.charge(conn, batch))

    await asyncio.gather(*(worker(batches) for _ in range(10)))
    accepted = [r for r in results if r.ok]
    assert len(results) == 3000
    assert len(accepted) == 1351                       # floor(500 / 0.37): never a cent more
    async with pool.acquire() as conn:
        assert await balance(conn, client_id) == D("0.13")
        assert await ledger_sum(conn, client_id) == D("0.13")
        charged = await conn.fetchval("SELECT sum(amounts[1]) FROM charges WHERE partner_id = $1", client_id)
    assert charged == sum(r.amount for r in accepted)


async def test_a_reseller_spent_meanwhile_makes_the_batch_stale(pool):
    """Several payers (the client and its reseller): their locks in id order, each one checked."""
    async with pool.acquire() as conn:
        client_id = await _client(conn, "Chained", under_reseller=True)
        reseller_id = await conn.fetchval("SELECT parent_id FROM partners WHERE id = $1", client_id)
        await conn.execute("UPDATE partners SET balance = 0.20 WHERE id = $1", reseller_id)
    charger = Charger()
    async with pool.acquire() as a, pool.acquire() as b:
        tx = a.transaction()
        await tx.start()
        pending = await charger.price(a, [msg(client_id, f"a{i}") for i in range(4)])
        results = pending.results()
        assert all(r.ok for r in results)               # the reseller pays 4 x 0.04 of its 0.20
        await b.execute("UPDATE partners SET balance = balance - 0.10 WHERE id = $1", reseller_id)
        with pytest.raises(StaleSnapshot):
            await pending.record(a)
        await tx.rollback()
        # Under the lock, the reseller's 0.10 left pays for two of them.
        results = await charger.charge(a, [msg(client_id, f"a{i}") for i in range(4)])
        assert [r.ok for r in results] == [True, True, False, False]
        assert await balance(a, reseller_id) == D("0.02")


async def test_pricing_under_the_lock_needs_a_transaction_to_hold_it(pool):
    async with pool.acquire() as conn:
        client_id = await _client(conn, "Locked out")
    charger = Charger()
    async with pool.acquire() as a:
        with pytest.raises(RuntimeError, match="needs a transaction"):
            await charger.price(a, [msg(client_id, "x")], lock=True)
        async with a.transaction():
            priced = await charger.price(a, [msg(client_id, "x")], lock=True)
            await priced.record(a)
        assert [r.ok for r in priced.results()] == [True]
        assert priced.results()[0].ledger_id == priced.ledger_ids["x"]
        assert await balance(a, client_id) == D("9.90")
