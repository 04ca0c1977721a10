"""Charging on PostgreSQL: debits, packs, the ledger, refunds, settlement and margins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.tenancy import load_scope
from billing import ledger, packs
from billing.charging import Charger, charge_messages, refund, settle_delivered
from billing.pricing import ChargeRequest
from config.errors import Conflict, Invalid
from tests.billing.conftest import balance, give_plan, ledger_sum, make_partner

D = Decimal
NOW = datetime.now(UTC)


def msg(partner_id: int, ref: str, *, mccmnc: str = "25001", parts: int = 1, source: str = "api",
        description: str = "", user_id: int | None = None) -> ChargeRequest:
    return ChargeRequest(partner_id, user_id, "sms", mccmnc, parts, None, source, ref, description)


async def test_plan_charge_debits_balance_and_writes_one_ledger_row_per_batch(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="10")
    await give_plan(conn, owner, client.id, {"250/01": "0.05", "250": "0.07"})
    results = await charge_messages(conn, [
        msg(client.id, "m1"), msg(client.id, "m2", parts=3), msg(client.id, "m3", mccmnc="25002"),
        msg(client.id, "m4", mccmnc="26201"),
    ])
    assert [r.ok for r in results] == [True, True, True, False]
    assert [r.amount for r in results[:3]] == [D("0.05"), D("0.15"), D("0.07")]
    assert results[3].reason == "no rate for 262/01" and results[3].ledger_id is None
    assert await balance(conn, client.id) == D("9.73")
    assert await ledger_sum(conn, client.id) == D("9.73")
    assert len({r.ledger_id for r in results[:3]}) == 1
    scope = await load_scope(conn, client.id)
    (tx, topup) = await ledger.list_transactions(conn, scope, client.id)
    assert (tx.type, tx.amount, tx.messages, tx.counterparty_id) == ("api", D("-0.27"), 3, owner.partner_id)
    assert topup.type == "topup"
    details = await ledger.transaction_details(conn, scope, tx.id)
    assert [(d.mccmnc, d.messages, d.parts, d.rate, d.total, d.country) for d in details] == [
        ("25001", 2, 4, D("0.05"), D("-0.20"), "RU"),
        ("25002", 1, 1, D("0.07"), D("-0.07"), "RU"),
    ]


async def test_batch_groups_ledger_rows_by_user_source_and_description(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="10")
    await give_plan(conn, owner, client.id, {"250": "0.10"})
    results = await charge_messages(conn, [
        msg(client.id, "a", source="campaign", description="Spring sale"),
        msg(client.id, "b", source="campaign", description="Spring sale"),
        msg(client.id, "c", source="smpp"),
    ])
    assert results[0].ledger_id == results[1].ledger_id != results[2].ledger_id
    types = await conn.fetch("SELECT type, description, amount FROM transactions WHERE partner_id = $1"
                             " AND type <> 'topup' ORDER BY id", client.id)
    assert [tuple(r) for r in types] == [("campaign", "Spring sale", D("-0.2")), ("smpp", "", D("-0.1"))]


async def test_charge_rows_keep_any_text_and_point_at_their_ledger_row(conn, owner):
    # The charge rows go out as array literals in the ledger's statement: quotes,
    # backslashes, braces, commas, tabs and newlines must arrive as they were sent.
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="10")
    await give_plan(conn, owner, client.id, {"250": "0.10"})
    odd = 'say "hi", {you}\\ \t tab\nline NULL'
    results = await charge_messages(conn, [
        msg(client.id, 'ref "1"', description=odd, user_id=None),
        msg(client.id, "ref\\2", description="", user_id=None),
        msg(client.id, "r3", description=odd, parts=2),
    ])
    assert all(r.ok for r in results)
    rows = await conn.fetch(
        """SELECT c.ref, c.description, c.user_id, c.parts, c.payer_ids, c.amounts, c.by_delivered,
                  t.description AS ledger_description, t.id = c.transaction_id AS linked
           FROM charges c JOIN transactions t ON t.id = c.transaction_id
           WHERE c.partner_id = $1 ORDER BY c.parts, c.description DESC""", client.id)
    assert [(r["ref"], r["description"], r["user_id"], r["parts"]) for r in rows] == [
        ('ref "1"', odd, None, 1), ("ref\\2", "", None, 1), ("r3", odd, None, 2)]
    assert all(r["ledger_description"] == r["description"] and r["linked"] for r in rows)
    assert [list(r["payer_ids"]) for r in rows] == [[client.id]] * 3
    assert [list(r["amounts"]) for r in rows] == [[D("0.10")], [D("0.10")], [D("0.20")]]
    linked = dict(await conn.fetch("SELECT ref, transaction_id FROM charges WHERE partner_id = $1",
                                   client.id))
    assert [r.ledger_id for r in results] == [linked['ref "1"'], linked["ref\\2"], linked["r3"]]
    # the two descriptions make two ledger rows
    assert len({r.ledger_id for r in results}) == 2


async def test_only_the_underfunded_partner_is_refused(conn, owner):
    rich = await make_partner(conn, owner, owner.partner_id, "client", "Rich", balance="100")
    poor = await make_partner(conn, owner, owner.partner_id, "client", "Poor", balance="0.25")
    for p in (rich, poor):
        await give_plan(conn, owner, p.id, {"250": "0.10"})
    batch = [msg(poor.id, f"p{i}") for i in range(4)] + [msg(rich.id, f"r{i}") for i in range(4)]
    results = await charge_messages(conn, batch)
    assert [r.ok for r in results] == [True, True, False, False] + [True] * 4
    assert results[2].code == "insufficient_balance"
    assert await balance(conn, poor.id) == D("0.05")
    assert await balance(conn, rich.id) == D("99.6")


async def test_credit_limit_lets_the_balance_go_negative_but_no_further(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", credit_limit="1")
    await give_plan(conn, owner, client.id, {"250": "0.30"})
    results = await charge_messages(conn, [msg(client.id, f"m{i}") for i in range(5)])
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert await balance(conn, client.id) == D("-0.90")


async def test_packs_pay_first_earliest_expiry_first_then_the_plan(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="20")
    await give_plan(conn, owner, client.id, {"250": "0.10"})
    scope = await load_scope(conn, client.id)
    long = await packs.create_pack(conn, owner, packs.NewPack(
        name="Long", channel="sms", message_count=3, price=D("1"), validity_days=30, public=True))
    short = await packs.create_pack(conn, owner, packs.NewPack(
        name="Short", channel="sms", message_count=2, price=D("1"), validity_days=7, public=True,
        countries=("RU",)))
    sub_long = await packs.purchase_pack(conn, scope, client.id, long.id, NOW)
    sub_short = await packs.purchase_pack(conn, scope, client.id, short.id, NOW)
    assert await balance(conn, client.id) == D("18")
    results = await charge_messages(conn, [msg(client.id, f"m{i}") for i in range(6)])
    assert [r.pack_id for r in results] == [sub_short.id] * 2 + [sub_long.id] * 3 + [None]
    assert [r.amount for r in results] == [0] * 5 + [D("0.10")]
    subs = {s.id: s.remaining for s in await packs.subscriptions(conn, scope, client.id)}
    assert subs == {sub_long.id: 0, sub_short.id: 0}
    tx = await ledger.list_transactions(conn, scope, client.id, types=("api",))
    assert (tx[0].messages, tx[0].pack_messages, tx[0].amount) == (6, 5, D("-0.1"))
    assert await ledger_sum(conn, client.id) == await balance(conn, client.id)


async def test_refund_of_failed_sends_returns_money_and_pack_parts_once(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="5")
    await give_plan(conn, owner, client.id, {"250": "0.10"})
    scope = await load_scope(conn, client.id)
    pack = await packs.create_pack(conn, owner, packs.NewPack(
        name="P", channel="sms", message_count=2, price=D("0"), validity_days=7, public=True))
    sub = await packs.purchase_pack(conn, scope, client.id, pack.id, NOW)
    await charge_messages(conn, [msg(client.id, "a", parts=2), msg(client.id, "b", parts=3)])
    assert await balance(conn, client.id) == D("4.70")
    assert await refund(conn, ["a", "b", "unknown"]) == 2
    assert await refund(conn, ["a", "b"]) == 0                   # refunding twice changes nothing
    assert await settle_delivered(conn, ["a"], False) == 0       # nor does a late receipt
    assert await balance(conn, client.id) == D("5")
    assert (await packs.subscriptions(conn, scope, client.id))[0].remaining == sub.total
    (r,) = await ledger.list_transactions(conn, scope, client.id, types=("refund",))
    assert (r.amount, r.messages, r.pack_messages) == (D("0.3"), 2, 1)
    assert await ledger_sum(conn, client.id) == D("5")


async def test_by_delivered_billing_settles_on_the_receipt(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="5")
    await give_plan(conn, owner, client.id, {"250": "0.10"}, billing_mode="delivered")
    await charge_messages(conn, [msg(client.id, "d"), msg(client.id, "u", parts=2)])
    assert await balance(conn, client.id) == D("4.70")            # reserved at submit
    assert await settle_delivered(conn, ["d"], True) == 1
    assert await settle_delivered(conn, ["u"], False) == 1
    assert await settle_delivered(conn, ["d", "u"], False) == 0   # repeated receipts are ignored
    assert await balance(conn, client.id) == D("4.90")
    states = dict(await conn.fetch("SELECT ref, state FROM charges WHERE ref = ANY($1)", ["d", "u"]))
    assert states == {"d": "delivered", "u": "undelivered"}


async def test_by_submitted_billing_keeps_the_charge_when_undelivered(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="5")
    await give_plan(conn, owner, client.id, {"250": "0.10"})
    await charge_messages(conn, [msg(client.id, "u")])
    assert await settle_delivered(conn, ["u"], False) == 1
    assert await balance(conn, client.id) == D("4.90")


async def test_reseller_chain_records_margin_at_each_level(conn, owner):
    reseller = await make_partner(conn, owner, owner.partner_id, "reseller", "Resell", balance="10")
    rscope = await load_scope(conn, reseller.id)
    client = await make_partner(conn, rscope, reseller.id, "client", "Shop", balance="10")
    await give_plan(conn, owner, reseller.id, {"250": "0.04"})
    await give_plan(conn, rscope, client.id, {"250/01": "0.07", "250": "0.09"}, billing_mode="delivered")
    results = await charge_messages(conn, [msg(client.id, "x", parts=2), msg(client.id, "y"),
                                           msg(client.id, "z", mccmnc="25002")])
    assert all(r.ok for r in results)
    assert await balance(conn, client.id) == D("9.70")        # 0.14 + 0.07 + 0.09
    assert await balance(conn, reseller.id) == D("9.84")      # 4 parts x 0.04
    since, until = NOW - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
    (line,) = await ledger.margin_report(conn, rscope, since=since, until=until)
    assert (line.origin_partner_id, line.messages, line.income, line.cost, line.margin) == (
        client.id, 3, D("0.30"), D("0.16"), D("0.14"))
    (owner_line,) = await ledger.margin_report(conn, owner, since=since, until=until)
    assert (owner_line.origin_partner_id, owner_line.income, owner_line.cost) == (client.id, D("0.16"), 0)
    # undelivered: the client (by delivered) gets its money back, the reseller (by submitted) does not
    await settle_delivered(conn, ["y"], False)
    assert await balance(conn, client.id) == D("9.77")
    assert await balance(conn, reseller.id) == D("9.84")
    (line,) = await ledger.margin_report(conn, rscope, since=since, until=until)
    assert (line.income, line.cost, line.margin) == (D("0.23"), D("0.16"), D("0.07"))
    # a failed send is refunded at every level
    await refund(conn, ["z"])
    assert await balance(conn, client.id) == D("9.86")
    assert await balance(conn, reseller.id) == D("9.88")
    for p in (client.id, reseller.id):
        assert await ledger_sum(conn, p) == await balance(conn, p)


async def test_reseller_funds_limit_its_clients_traffic(conn, owner):
    reseller = await make_partner(conn, owner, owner.partner_id, "reseller", "Resell", balance="0.08")
    rscope = await load_scope(conn, reseller.id)
    client = await make_partner(conn, rscope, reseller.id, "client", "Shop", balance="10")
    await give_plan(conn, owner, reseller.id, {"250": "0.04"})
    await give_plan(conn, rscope, client.id, {"250": "0.09"})
    results = await charge_messages(conn, [msg(client.id, f"m{i}") for i in range(3)])
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].reason == f"insufficient balance (reseller {reseller.id})"
    assert await balance(conn, client.id) == D("9.82")
    assert await balance(conn, reseller.id) == 0


async def test_owner_traffic_is_free_and_still_refundable(conn, owner):
    (r,) = await charge_messages(conn, [msg(owner.partner_id, "own")])
    assert r.ok and r.amount == 0 and r.ledger_id is None
    assert await refund(conn, ["own"]) == 1


async def test_blocked_partner_is_refused(conn, owner):
    from accounts.partners import set_status

    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="1")
    await give_plan(conn, owner, client.id, {"250": "0.1"})
    await set_status(conn, owner, client.id, "blocked")
    (r,) = await charge_messages(conn, [msg(client.id, "b")])
    assert (r.ok, r.code) == (False, "partner_blocked")


async def test_repeated_refs_are_refused(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="1")
    await give_plan(conn, owner, client.id, {"250": "0.1"})
    with pytest.raises(Invalid):
        await charge_messages(conn, [msg(client.id, "same"), msg(client.id, "same")])
    await charge_messages(conn, [msg(client.id, "same")])
    # Inside a caller's transaction a failed charge fails that transaction (no savepoint of
    # its own): a caller that wants to carry on wraps the call in a savepoint itself.
    with pytest.raises(Conflict):
        async with conn.transaction():
            await charge_messages(conn, [msg(client.id, "same")])
    assert await balance(conn, client.id) == D("0.9")


async def test_charger_cache_follows_plan_rate_changes(conn, owner):
    from billing import plans
    from billing.rates import RateRow

    client = await make_partner(conn, owner, owner.partner_id, "client", "Acme", balance="5")
    plan = await give_plan(conn, owner, client.id, {"250": "0.10"})
    charger = Charger()
    (a,) = await charger.charge(conn, [msg(client.id, "a")])
    await plans.set_rates(conn, owner, plan.id, [RateRow("250", "*", D("0.20"))])
    (b,) = await charger.charge(conn, [msg(client.id, "b")])
    assert (a.amount, b.amount) == (D("0.10"), D("0.20"))
