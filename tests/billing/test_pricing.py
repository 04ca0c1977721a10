"""Pure pricing: packs before plans, fallbacks, parts, funds, and the reseller chain."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import (
    BLOCKED,
    INSUFFICIENT,
    NO_RATE,
    UNKNOWN_PARTNER,
    Account,
    ChargeRequest,
    PackHolding,
    PlanRates,
    Snapshot,
    price_batch,
    traffic_of,
)
from billing.rates import RateRow, RateTable

D = Decimal
NOW = datetime(2025, 1, 1, tzinfo=UTC)
OWNER, RESELLER, CLIENT, OTHER = 1, 2, 3, 4


def plan(rates: dict[str, str], *, by_delivered: bool = False, plan_id: int = 1) -> PlanRates:
    rows = []
    for key, price in rates.items():
        mcc, _, mnc = key.partition("/")
        rows.append(RateRow(mcc, mnc or "*", D(price)))
    return PlanRates(plan_id, 1, "EUR", by_delivered, RateTable(rows))


def snapshot(available: dict[int, str] | None = None) -> Snapshot:
    """CLIENT under RESELLER under OWNER; OTHER directly under OWNER."""
    available = available or {}
    snap = Snapshot()
    snap.chains = {CLIENT: (CLIENT, RESELLER), RESELLER: (RESELLER,), OTHER: (OTHER,), OWNER: ()}
    parents = {CLIENT: RESELLER, RESELLER: OWNER, OTHER: OWNER}
    for pid, parent in parents.items():
        snap.accounts[pid] = Account(pid, parent, "active", "EUR", D(available.get(pid, "1000")))
    return snap


def req(ref: str, *, partner: int = OTHER, mccmnc: str = "25001", parts: int = 1, channel: str = "sms",
        traffic_type: str | None = None) -> ChargeRequest:
    return ChargeRequest(partner, 7, channel, mccmnc, parts, traffic_type, "api", ref)


def pack(pack_id: int, partner: int, remaining: int, *, days: int, mccs: set[str] | None = None,
         channel: str = "sms", cost: str = "0.01") -> PackHolding:
    return PackHolding(pack_id, partner, channel, frozenset(mccs) if mccs else None, remaining, D(cost), False,
                       NOW + timedelta(days=days))


def test_traffic_types():
    assert traffic_of("sms") == "sms"
    assert traffic_of("sms", "transaction") == "sms"
    assert traffic_of("viber", "TRANSACTION") == "viber_transaction"
    assert traffic_of("viber", "promotion") == "viber_promotion"
    assert traffic_of("viber") == "viber_promotion"
    with pytest.raises(ValueError):
        traffic_of("fax")


def test_network_rate_then_country_fallback_then_no_rate():
    snap = snapshot()
    snap.plans[(OTHER, "sms")] = plan({"250/01": "0.05", "250": "0.07"})
    a, b, c, d = price_batch(snap, [req("a", mccmnc="25001"), req("b", mccmnc="25099"),
                                    req("c", mccmnc="250"), req("d", mccmnc="26201")])
    assert (a.ok, a.amount) == (True, D("0.05"))
    assert (b.ok, b.amount) == (True, D("0.07"))
    assert (c.ok, c.amount) == (True, D("0.07"))
    assert not d.ok and d.code == NO_RATE and d.reason == "no rate for 262/01"


def test_three_digit_mnc_and_no_plan_for_traffic():
    snap = snapshot()
    snap.plans[(OTHER, "sms")] = plan({"310/150": "0.011"})
    ok, viber = price_batch(snap, [req("a", mccmnc="310150"),
                                   req("b", mccmnc="310150", channel="viber", traffic_type="transaction")])
    assert ok.amount == D("0.011")
    assert not viber.ok and viber.code == NO_RATE


def test_multipart_costs_per_part():
    snap = snapshot()
    snap.plans[(OTHER, "sms")] = plan({"250": "0.033"})
    (d,) = price_batch(snap, [req("a", parts=3)])
    assert d.amount == D("0.099")
    assert d.levels[0].rate == D("0.033")


def test_pack_is_used_before_plan_earliest_expiry_first():
    snap = snapshot()
    snap.plans[(OTHER, "sms")] = plan({"250": "0.05"})
    late, early = pack(10, OTHER, 100, days=30), pack(11, OTHER, 100, days=5)
    snap.packs[(OTHER, "sms")] = sorted([late, early], key=lambda p: p.expires_at)
    (d,) = price_batch(snap, [req("a", parts=2)])
    assert d.ok and d.pack_id == 11 and d.amount == 0
    assert early.remaining == 98 and late.remaining == 100


def test_pack_without_enough_parts_or_outside_its_countries_is_skipped():
    snap = snapshot()
    snap.plans[(OTHER, "sms")] = plan({"250": "0.05", "262": "0.06"})
    small = pack(10, OTHER, 1, days=1, mccs={"250"})
    german = pack(11, OTHER, 100, days=2, mccs={"262"})
    snap.packs[(OTHER, "sms")] = [small, german]
    a, b, c = price_batch(snap, [req("a", parts=2, mccmnc="25001"), req("b", mccmnc="26201"),
                                 req("c", mccmnc="25001")])
    assert a.pack_id is None and a.amount == D("0.10")     # small pack holds 1 < 2 parts
    assert b.pack_id == 11
    assert c.pack_id == 10 and small.remaining == 0        # one part fits the small pack


def test_viber_pack_does_not_pay_sms():
    snap = snapshot()
    snap.packs[(OTHER, "viber")] = [pack(10, OTHER, 100, days=1, channel="viber")]
    (sms,) = price_batch(snap, [req("a")])
    assert not sms.ok and sms.code == NO_RATE


def test_insufficient_balance_refuses_that_message_and_later_ones_of_the_payer_only():
    snap = snapshot({OTHER: "0.10", RESELLER: "1000"})
    snap.plans[(OTHER, "sms")] = plan({"250": "0.04"})
    snap.plans[(CLIENT, "sms")] = plan({"250": "0.05"})
    snap.plans[(RESELLER, "sms")] = plan({"250": "0.03"})
    batch = [req("o1"), req("o2"), req("o3", parts=2), req("c1", partner=CLIENT), req("o4")]
    o1, o2, o3, c1, o4 = price_batch(snap, batch)
    assert o1.ok and o2.ok
    assert not o3.ok and o3.code == INSUFFICIENT and o3.reason == "insufficient balance"
    assert c1.ok                                  # another payer is not affected
    assert not o4.ok and o4.code == INSUFFICIENT  # exact fit (0.02 left) but after a refusal: refused


def test_credit_limit_counts_as_available():
    snap = snapshot({OTHER: "0.05"})                 # e.g. balance -0.95 with credit limit 1.00
    snap.plans[(OTHER, "sms")] = plan({"250": "0.05"})
    a, b = price_batch(snap, [req("a"), req("b")])
    assert a.ok and not b.ok


def test_reseller_chain_each_level_pays_its_own_rate():
    snap = snapshot()
    snap.plans[(CLIENT, "sms")] = plan({"250/01": "0.08"}, by_delivered=True)
    snap.plans[(RESELLER, "sms")] = plan({"250": "0.05"})
    (d,) = price_batch(snap, [req("a", partner=CLIENT, parts=2)])
    assert d.ok
    client, reseller = d.levels
    assert (client.payer_id, client.amount, client.by_delivered) == (CLIENT, D("0.16"), True)
    assert (reseller.payer_id, reseller.amount, reseller.by_delivered) == (RESELLER, D("0.10"), False)
    assert client.amount - reseller.amount == D("0.06")   # the reseller's margin


def test_reseller_without_rate_or_funds_refuses_its_clients_message_and_keeps_packs_intact():
    snap = snapshot({RESELLER: "0.01"})
    client_pack = pack(10, CLIENT, 5, days=3)
    snap.packs[(CLIENT, "sms")] = [client_pack]
    snap.plans[(RESELLER, "sms")] = plan({"250": "0.05"})
    no_rate, no_funds = price_batch(snap, [req("a", partner=CLIENT, mccmnc="26201"),
                                           req("b", partner=CLIENT)])
    assert not no_rate.ok and no_rate.code == NO_RATE and "reseller 2" in no_rate.reason
    assert not no_funds.ok and no_funds.code == INSUFFICIENT and "reseller 2" in no_funds.reason
    assert client_pack.remaining == 5


def test_blocked_unknown_and_owner_senders():
    snap = snapshot()
    snap.accounts[RESELLER] = Account(RESELLER, OWNER, "blocked", "EUR", D(1000))
    blocked, unknown, own = price_batch(snap, [req("a", partner=CLIENT), req("b", partner=99),
                                               req("c", partner=OWNER)])
    assert blocked.code == BLOCKED
    assert unknown.code == UNKNOWN_PARTNER
    assert own.ok and own.levels == () and own.amount == 0


def test_malformed_mccmnc_is_refused():
    snap = snapshot()
    snap.plans[(OTHER, "sms")] = plan({"250": "0.05"})
    (d,) = price_batch(snap, [req("a", mccmnc="2500")])
    assert not d.ok and d.code == "bad_destination"


@settings(max_examples=60, deadline=None)
@given(
    available=st.decimals(min_value=0, max_value=5, places=2),
    parts=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=40),
    rate=st.decimals(min_value=D("0.001"), max_value=1, places=3),
)
def test_accepted_never_exceed_available_and_refusals_form_a_suffix(available, parts, rate):
    snap = snapshot({OTHER: str(available)})
    snap.plans[(OTHER, "sms")] = plan({"250": str(rate)})
    decisions = price_batch(snap, [req(str(i), parts=p) for i, p in enumerate(parts)])
    spent = sum((d.amount for d in decisions if d.ok), D(0))
    assert spent <= available
    oks = [d.ok for d in decisions]
    assert oks == sorted(oks, reverse=True)      # accepted prefix, refused suffix
    if not all(oks):
        first_refused = oks.index(False)
        assert spent + rate * parts[first_refused] > available


_PARTNERS = (CLIENT, RESELLER, OTHER, OWNER, 99)  # 99: unknown
_NETWORKS = ("25001", "25002", "250", "262", "26201", "310150", "2500", "abcde")


@st.composite
def _batches(draw):
    """A random snapshot (funds, statuses, plans, sometimes packs) and a batch for it."""
    available = {p: str(draw(st.decimals(min_value=0, max_value=D("0.3"), places=2)))
                 for p in (CLIENT, RESELLER, OTHER)}
    snap = snapshot(available)
    for pid in (CLIENT, RESELLER, OTHER):
        if draw(st.integers(0, 9)) == 0:
            account = snap.accounts[pid]
            snap.accounts[pid] = Account(pid, account.parent_id, "blocked", "EUR", account.available)
        for traffic in ("sms", "viber_promotion", "viber_transaction"):
            rates = draw(st.dictionaries(st.sampled_from(["250", "250/01", "262", "310/150"]),
                                         st.sampled_from(["0", "0.01", "0.02", "0.035"]), max_size=3))
            if rates or draw(st.booleans()):
                snap.plans[(pid, traffic)] = plan(rates, by_delivered=draw(st.booleans()))
        if draw(st.integers(0, 3)) == 0:
            channel = draw(st.sampled_from(["sms", "viber"]))
            snap.packs[(pid, channel)] = [pack(pid * 10, pid, draw(st.integers(0, 6)), days=1,
                                               mccs=draw(st.sampled_from([None, {"250"}, {"262"}])),
                                               channel=channel)]
    requests = [
        ChargeRequest(draw(st.sampled_from(_PARTNERS)), 7, draw(st.sampled_from(["sms", "viber"])),
                      draw(st.sampled_from(_NETWORKS)), draw(st.integers(1, 3)),
                      draw(st.sampled_from([None, "transaction", "promotion"])), "api", str(i))
        for i in range(draw(st.integers(1, 30)))
    ]
    return snap, requests


@settings(max_examples=300, deadline=None)
@given(_batches())
def test_memoised_pricing_decides_as_the_message_by_message_rule(batch):
    snap, requests = batch
    general = copy.deepcopy(snap)  # pack counts are spent as the batch is priced
    fast = price_batch(snap, requests)
    slow = price_batch(general, requests, memo=False)
    assert fast == slow
    assert [(p.id, p.remaining) for ps in snap.packs.values() for p in ps] == [
        (p.id, p.remaining) for ps in general.packs.values() for p in ps]
