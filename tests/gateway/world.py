"""A small Herald world for pipeline and API tests, built through the domain's own API.

One client partner under the system owner with a balance, a rate plan, an
enabled sender ID for SMS and Viber, a user who can sign in, an SMS vendor
and a Viber vendor with default routes, and a reference book entry for a
Russian mobile network.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from accounts import senders
from accounts.partners import NewPartner, create_partner
from accounts.tenancy import load_scope, owner_scope
from accounts.users import NewUser, create_user
from billing import ledger, plans
from billing.rates import RateRow
from billing.vendors import NewVendor, create_vendor
from gateway.accept import routing

SENDER = "Herald"
PASSWORD = "client-password-1"
RU_MOBILE = "79161234567"   # 7916 → 250/01 in the book below
DE_MOBILE = "4915112345678"  # the book knows Germany (262) but not the network


@dataclass(frozen=True)
class World:
    partner_id: int
    user_id: int
    email: str
    sms_vendor: int
    viber_vendor: int


async def give_plan(conn, seller, buyer_id: int, rates: dict[str, str], traffic: str) -> None:
    rows = []
    for key, price in rates.items():
        mcc, _, mnc = key.partition("/")
        rows.append(RateRow(mcc, mnc or "*", Decimal(price)))
    plan, report = await plans.create_plan(
        conn, seller, plans.NewPlan(name=f"plan {buyer_id} {traffic}", traffic=traffic), rows)
    assert not report.rejected
    await plans.offer_plan(conn, seller, plan.id, buyer_id)
    await plans.subscribe(conn, seller, buyer_id, plan.id)


async def enable_sender(conn, partner_id: int, channel: str, sender: str) -> int:
    owner = await owner_scope(conn)
    scope = await load_scope(conn, partner_id)
    sid = await senders.request_sender_id(conn, scope, channel=channel, sender=sender)
    await senders.approve(conn, owner, sid.id)
    return sid.id


async def make_world(
    pool: asyncpg.Pool, *, name: str = "Acme", balance: str = "100", mo_enabled: bool = False,
    rates: dict[str, str] | None = None, email: str | None = None,
    vendors: tuple[int, int] | None = None,
) -> World:
    async with pool.acquire() as conn, conn.transaction():
        owner = await owner_scope(conn)
        partner = await create_partner(conn, owner, owner.partner_id, NewPartner(
            kind="client", name=name, mo_enabled=mo_enabled))
        if Decimal(balance):
            await ledger.adjust_balance(conn, owner, partner.id, Decimal(balance))
        await give_plan(conn, owner, partner.id, rates or {"250/01": "0.05", "262": "0.07"}, "sms")
        await give_plan(conn, owner, partner.id, {"250": "0.02"}, "viber_promotion")
        await give_plan(conn, owner, partner.id, {"250": "0.01"}, "viber_transaction")
        await enable_sender(conn, partner.id, "sms", SENDER)
        await enable_sender(conn, partner.id, "viber", SENDER)
        mail = email or f"{name.lower()}@client.test"
        user = await create_user(conn, owner, partner.id, NewUser(email=mail, password=PASSWORD))
        if vendors is None:
            sms = await create_vendor(conn, owner, NewVendor(
                name="carrier", smpp_host="127.0.0.1", smpp_port=2775, system_id="herald"))
            viber = await create_vendor(conn, owner, NewVendor(
                name="viber", channel="viber", protocol="http", http_base_url="http://127.0.0.1:9"))
            await routing.add_route(conn, routing.Route("sms", sms.id))
            await routing.add_route(conn, routing.Route("viber", viber.id))
            await conn.execute(
                """INSERT INTO number_prefixes (prefix, mcc, mnc, country, network)
                   VALUES ('7916', '250', '01', 'RU', 'MTS'), ('7', '250', NULL, 'RU', ''),
                          ('49', '262', NULL, 'DE', ''), ('33', '208', NULL, 'FR', '')""")
            await conn.execute("UPDATE refbook_state SET revision = revision + 1")
            vendors = (sms.id, viber.id)
    return World(partner.id, user.id, mail, vendors[0], vendors[1])


async def balance(pool, partner_id: int) -> Decimal:
    return await pool.fetchval("SELECT balance FROM partners WHERE id = $1", partner_id)


async def send_accepting_mo(pipeline, partner_id: int, text: str = "tell us"):
    """An API message to RU_MOBILE that accepts replies (with a callback URL): the MT an
    incoming message from that number is matched to. Returns its Accepted."""
    from gateway.accept.pipeline import Accepted, Submission

    (mt,) = await pipeline.submit([Submission(
        partner_id=partner_id, origin="api", sender=SENDER, destination=RU_MOBILE,
        text=text, accept_mo=True, callback_url="http://127.0.0.1:9/cb")])
    assert isinstance(mt, Accepted), mt
    return mt
