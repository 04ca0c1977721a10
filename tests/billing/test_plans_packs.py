"""Rate plans (offers, one active per traffic, reseller-derived price lists) and packs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.tenancy import load_scope
from billing import ledger, packs, plans
from billing.errors import InsufficientBalance
from billing.plans import NewPlan
from billing.rates import RateRow, RateTable, parse_rates_csv
from config.errors import Forbidden, Invalid, NotFound
from tests.billing.conftest import balance, give_plan, make_partner

D = Decimal
NOW = datetime.now(UTC)


def test_rate_table_falls_back_to_the_country():
    table = RateTable([RateRow("250", "01", D("0.05")), RateRow("250", "*", D("0.07"))])
    assert table.rate_for("250", "01") == D("0.05")
    assert table.rate_for("250", "02") == D("0.07")
    assert table.rate_for("250", None) == D("0.07")
    assert table.rate_for("262", "01") is None
    assert table.covers(RateRow("250", "99", D(1))) and table.covers(RateRow("250", "*", D(1)))
    assert not RateTable([RateRow("250", "01", D(1))]).covers(RateRow("250", "*", D(1)))


def test_price_list_csv_rows_are_checked():
    rows, rejected = parse_rates_csv(
        "mcc,mnc,price,country\n250,01,0.05,RU\n250,,0.07\n25,01,1\n250,01,0.06\n262,01,abc\n"
        "262,02,0.1234567\n262,03,-1\n")
    assert [(r.mcc, r.mnc, r.price) for r in rows] == [("250", "01", D("0.05")), ("250", "*", D("0.07"))]
    assert [(r.line, r.reason) for r in rejected] == [
        (4, "MCC must be 3 digits"),
        (5, "250/01 repeats line 2"),
        (6, "price 'abc' is not a number"),
        (7, "price has more than 6 decimal places"),
        (8, "price must be from 0 to 999999"),
    ]


async def test_one_active_plan_per_traffic_and_offer_rules(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "C")
    cscope = await load_scope(conn, client.id)
    first = await give_plan(conn, owner, client.id, {"250": "0.1"}, name="first")
    viber = await give_plan(conn, owner, client.id, {"250": "0.2"}, traffic="viber_promotion", name="viber")
    hidden, _ = await plans.create_plan(conn, owner, NewPlan("hidden", "sms"))
    public, _ = await plans.create_plan(conn, owner, NewPlan("public", "sms", public=True))
    usd, _ = await plans.create_plan(conn, owner, NewPlan("usd", "sms", currency="USD", public=True))
    for_resellers, _ = await plans.create_plan(conn, owner, NewPlan("rp", "sms", for_resellers=True, public=True))
    available = {p.name for p in await plans.available_plans(conn, cscope, client.id)}
    assert available == {"first", "viber", "public"}
    for plan in (hidden, usd, for_resellers):
        with pytest.raises(NotFound):
            await plans.subscribe(conn, cscope, client.id, plan.id)
    await plans.subscribe(conn, cscope, client.id, public.id)     # the client buys it itself
    active = await plans.active_plans(conn, cscope, client.id)
    assert {t: p.name for t, p in active.items()} == {"sms": "public", "viber_promotion": "viber"}
    assert first.id != public.id
    with pytest.raises(Forbidden):                                # users cannot unsubscribe themselves
        await plans.unsubscribe(conn, cscope, client.id, "sms")
    assert await plans.unsubscribe(conn, owner, client.id, "sms")
    assert set(await plans.active_plans(conn, cscope, client.id)) == {"viber_promotion"}
    assert viber.traffic == "viber_promotion"


async def test_reseller_derives_a_plan_from_its_price_list(conn, owner):
    reseller = await make_partner(conn, owner, owner.partner_id, "reseller", "R")
    rscope = await load_scope(conn, reseller.id)
    base = await give_plan(conn, owner, reseller.id, {"250/01": "0.03", "250": "0.04", "262/01": "0.05"})
    assert base.for_resellers
    exported = await plans.export_rates_csv(conn, rscope, base.id)
    assert exported.splitlines() == [
        "mcc,mnc,price,country", "250,*,0.040000,RU", "250,01,0.030000,RU", "262,01,0.050000,DE"]
    derived, _ = await plans.create_plan(conn, rscope, NewPlan("Retail", "sms", public=True, base_plan_id=base.id))
    upload = ("mcc,mnc,price,country\n250,01,0.06,RU\n250,02,0.07,RU\n262,*,0.09,DE\n"
              "262,01,0.04,DE\n310,150,0.01,US\n")
    report = await plans.import_rates_csv(conn, rscope, derived.id, upload)
    assert report.accepted == 3
    assert [(r.line, r.reason) for r in report.rejected] == [
        (4, "262 is not covered by the base plan"), (6, "310/150 is not covered by the base plan")]
    assert {(r.mcc, r.mnc) for r in await plans.rates_of(conn, rscope, derived.id)} == {
        ("250", "01"), ("250", "02"), ("262", "01")}
    (cheap,) = await plans.below_cost(conn, rscope, derived.id)
    assert (cheap[0].price, cheap[1].price) == (D("0.04"), D("0.05"))
    # the owner's other reseller plans are not a base for this reseller
    other, _ = await plans.create_plan(conn, owner, NewPlan("private rp", "sms", for_resellers=True))
    with pytest.raises(NotFound):
        await plans.create_plan(conn, rscope, NewPlan("X", "sms", base_plan_id=other.id))
    with pytest.raises(Forbidden):
        await plans.set_rates(conn, rscope, base.id, [])          # the base belongs to the owner
    client = await make_partner(conn, rscope, reseller.id, "client", "C")
    cscope = await load_scope(conn, client.id)
    await plans.subscribe(conn, cscope, client.id, derived.id)
    with pytest.raises(NotFound):                                 # the client cannot read the base plan
        await plans.get_plan(conn, cscope, base.id)


async def test_pack_purchase_debits_the_balance(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "C", balance="10")
    cscope = await load_scope(conn, client.id, user_id=None)
    pack = await packs.create_pack(conn, owner, packs.NewPack(
        name="1000 RU", channel="sms", message_count=1000, price=D("7.5"), validity_days=30,
        countries=("ru", "KZ"), billing_mode="delivered"))
    assert pack.cost_per_message == D("0.0075") and pack.countries == ("RU", "KZ")
    with pytest.raises(NotFound):                                 # not offered yet
        await packs.purchase_pack(conn, cscope, client.id, pack.id, NOW)
    await packs.offer_pack(conn, owner, pack.id, client.id)
    assert [p.id for p in await packs.available_packs(conn, cscope, client.id, NOW)] == [pack.id]
    sub = await packs.purchase_pack(conn, cscope, client.id, pack.id, NOW)
    assert (sub.remaining, sub.mccs, sub.billing_mode) == (1000, ("250", "401"), "delivered")
    assert sub.expires_at == NOW + timedelta(days=30)
    assert await balance(conn, client.id) == D("2.5")
    (tx, _) = await ledger.list_transactions(conn, cscope, client.id)
    assert (tx.type, tx.amount, tx.description, tx.id) == ("pack_purchase", D("-7.5"), "pack 1000 RU",
                                                          sub.transaction_id)
    with pytest.raises(InsufficientBalance):
        await packs.purchase_pack(conn, cscope, client.id, pack.id, NOW)
    assert len(await packs.subscriptions(conn, cscope, client.id)) == 1
    assert await balance(conn, client.id) == D("2.5")


async def test_pack_sales_window_and_validation(conn, owner):
    client = await make_partner(conn, owner, owner.partner_id, "client", "C", balance="10")
    cscope = await load_scope(conn, client.id)
    later = await packs.create_pack(conn, owner, packs.NewPack(
        name="later", channel="sms", message_count=10, price=D(1), validity_days=1, public=True,
        available_from=NOW + timedelta(days=1), available_until=NOW + timedelta(days=2)))
    assert await packs.available_packs(conn, cscope, client.id, NOW) == []
    assert [p.id for p in await packs.available_packs(conn, cscope, client.id, NOW + timedelta(days=1, hours=1))] \
        == [later.id]
    with pytest.raises(Invalid):
        await packs.create_pack(conn, owner, packs.NewPack(name="x", channel="sms", message_count=1, price=D(1),
                                                           validity_days=1, countries=("ZZ",)))
    with pytest.raises(Forbidden):
        await packs.create_pack(conn, cscope, packs.NewPack(name="x", channel="sms", message_count=1,
                                                            price=D(1), validity_days=1))
    sub = await packs.purchase_pack(conn, cscope, client.id, later.id, NOW + timedelta(days=1, hours=1))
    with pytest.raises(Forbidden):
        await packs.cancel_subscription(conn, cscope, sub.id)
    await packs.cancel_subscription(conn, owner, sub.id)
    assert await packs.subscriptions(conn, cscope, client.id, live_at=NOW + timedelta(days=1, hours=2)) == []
