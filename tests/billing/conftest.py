"""Helpers for billing tests: a partner tree built through billing's own API."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest_asyncio

from accounts.partners import NewPartner, Partner, create_partner
from accounts.tenancy import Scope, load_scope, owner_scope
from billing import ledger, plans
from billing.rates import RateRow


@pytest_asyncio.fixture(loop_scope="session")
async def owner(conn: asyncpg.Connection) -> Scope:
    return await owner_scope(conn)


async def make_partner(conn, scope: Scope, parent_id: int, kind: str, name: str, *,
                       balance: str | Decimal = "0", credit_limit: str | Decimal = "0",
                       currency: str | None = None) -> Partner:
    """A partner under ``parent_id``, topped up by the owner when ``balance`` is set."""
    partner = await create_partner(conn, scope, parent_id, NewPartner(
        kind=kind, name=name, currency=currency, credit_limit=Decimal(credit_limit)))
    if Decimal(balance):
        owner = await owner_scope(conn)
        await ledger.adjust_balance(conn, owner, partner.id, Decimal(balance))
    return partner


async def give_plan(conn, seller: Scope, buyer_id: int, rates: dict[str, str], *, traffic: str = "sms",
                    billing_mode: str = "submitted", name: str | None = None) -> plans.RatePlan:
    """A plan sold by ``seller`` with ``{"250/01": "0.05", "250": "0.07"}`` rates, made active for buyer."""
    buyer = await load_scope(conn, buyer_id)
    rows = []
    for key, price in rates.items():
        mcc, _, mnc = key.partition("/")
        rows.append(RateRow(mcc, mnc or "*", Decimal(price)))
    plan, report = await plans.create_plan(conn, seller, plans.NewPlan(
        name=name or f"plan {buyer_id} {traffic}", traffic=traffic, billing_mode=billing_mode,
        for_resellers=buyer.kind == "reseller"), rows)
    assert not report.rejected
    await plans.offer_plan(conn, seller, plan.id, buyer_id)
    await plans.subscribe(conn, seller, buyer_id, plan.id)
    return plan


async def balance(conn, partner_id: int) -> Decimal:
    return await conn.fetchval("SELECT balance FROM partners WHERE id = $1", partner_id)


async def ledger_sum(conn, partner_id: int) -> Decimal:
    return await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM transactions WHERE partner_id = $1", partner_id)
