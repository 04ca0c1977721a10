"""A small partner tree for the Admin Panel tests, built with billing's own functions.

    owner ── reseller "Resale" (admin reseller@admin.test) ── client "Inside" (user inside@client.test)
          └─ client "Outside" (user outside@client.test)

Every object a reseller must not reach hangs off "Outside" or the owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from accounts import partners, senders, users
from accounts.partners import NewPartner
from accounts.tenancy import Scope, owner_scope
from billing import packs, plans, vendors
from gateway.intake import smpp_accounts
from tests.portal.conftest import PASSWORD

RESELLER_EMAIL = "reseller@admin.test"
INSIDE_EMAIL = "inside@client.test"
OUTSIDE_EMAIL = "outside@client.test"


@dataclass
class World:
    owner: Scope
    reseller_id: int
    inside_id: int
    outside_id: int
    inside_user: int
    outside_user: int
    portal_id: int
    outside_sender: int
    outside_smpp: int
    owner_plan: int
    owner_pack: int
    vendor_id: int


async def build_world(db: asyncpg.Connection) -> World:
    owner = await owner_scope(db)
    reseller = await partners.create_partner(db, owner, owner.partner_id, NewPartner("reseller", "Resale"))
    rscope = Scope(reseller.id, "reseller")
    inside = await partners.create_partner(db, rscope, reseller.id, NewPartner("client", "Inside"))
    outside = await partners.create_partner(db, owner, owner.partner_id, NewPartner("client", "Outside"))
    await users.create_user(db, owner, reseller.id, users.NewUser(RESELLER_EMAIL, PASSWORD))
    inside_user = await users.create_user(db, owner, inside.id, users.NewUser(INSIDE_EMAIL, PASSWORD))
    outside_user = await users.create_user(db, owner, outside.id, users.NewUser(OUTSIDE_EMAIL, PASSWORD))
    portal_id = await db.fetchval("SELECT id FROM portals WHERE is_default")
    sid = await senders.request_sender_id(db, Scope(outside.id, "client", outside_user.id),
                                          channel="sms", sender="OutBrand")
    account = await smpp_accounts.create_account(db, outside.id, "outsmpp", "secret1")
    plan, _ = await plans.create_plan(db, owner, plans.NewPlan("Owner SMS", "sms"))
    pack = await packs.create_pack(db, owner, packs.NewPack("Owner pack", "sms", 100, Decimal("5"), 30))
    vendor = await vendors.create_vendor(db, owner, vendors.NewVendor(
        "Carrier", smpp_host="127.0.0.1", smpp_port=2775, system_id="herald", password="pw"))
    return World(owner, reseller.id, inside.id, outside.id, inside_user.id, outside_user.id, portal_id,
                 sid.id, account.id, plan.id, pack.id, vendor.id)


def get_routes(w: World) -> list[str]:
    """Every admin page (GET), with ids of objects only the owner may reach."""
    return [
        "/admin", "/admin/partners", "/admin/partners/new", f"/admin/partners/{w.outside_id}",
        f"/admin/partners/{w.outside_id}/edit", "/admin/users", "/admin/users/new", "/admin/sender-ids",
        "/admin/sender-ids?view=all", f"/admin/sender-ids/{w.outside_sender}", "/admin/portals",
        "/admin/portals/new", f"/admin/portals/{w.portal_id}", "/admin/vendors", "/admin/vendors/new",
        f"/admin/vendors/{w.vendor_id}", "/admin/reference-book", "/admin/reference-book.csv", "/admin/plans",
        "/admin/plans/new", f"/admin/plans/{w.owner_plan}", f"/admin/plans/{w.owner_plan}/rates.csv",
        "/admin/packs", "/admin/packs/new", f"/admin/packs/{w.owner_pack}", "/admin/smpp-accounts",
        "/admin/smpp-accounts/new", f"/admin/smpp-accounts/{w.outside_smpp}",
    ]


def post_routes(w: World) -> list[str]:
    """Every admin form target."""
    return [
        "/admin/partners/new", f"/admin/partners/{w.outside_id}/edit", f"/admin/partners/{w.outside_id}/block",
        f"/admin/partners/{w.outside_id}/unblock", f"/admin/partners/{w.outside_id}/topup",
        f"/admin/partners/{w.outside_id}/payment", "/admin/users/new", f"/admin/users/{w.outside_user}/disable",
        f"/admin/users/{w.outside_user}/enable", f"/admin/sender-ids/{w.outside_sender}/approve",
        f"/admin/sender-ids/{w.outside_sender}/decline", "/admin/portals/new", f"/admin/portals/{w.portal_id}",
        "/admin/vendors/new", f"/admin/vendors/{w.vendor_id}", f"/admin/vendors/{w.vendor_id}/products",
        f"/admin/vendors/{w.vendor_id}/products/1/rates", "/admin/reference-book", "/admin/plans/new",
        f"/admin/plans/{w.owner_plan}/rates", f"/admin/plans/{w.owner_plan}/offer", "/admin/packs/new",
        f"/admin/packs/{w.owner_pack}/offer", "/admin/smpp-accounts/new", f"/admin/smpp-accounts/{w.outside_smpp}",
    ]


# Routes with an id of an object outside the reseller's subtree: 404 for the reseller.
def foreign_routes(w: World) -> list[tuple[str, str]]:
    owner_only = ("/admin/vendors", "/admin/reference-book")
    gets = [("GET", p) for p in get_routes(w) if any(c.isdigit() for c in p) and not p.startswith(owner_only)]
    posts = [("POST", p) for p in post_routes(w) if any(c.isdigit() for c in p) and not p.startswith(owner_only)]
    return gets + posts


def owner_only_routes(w: World) -> list[tuple[str, str]]:
    owner_only = ("/admin/vendors", "/admin/reference-book")
    return [("GET", p) for p in get_routes(w) if p.startswith(owner_only)] + [
        ("POST", p) for p in post_routes(w) if p.startswith(owner_only)]
