"""The partner tree, portals, users, and tenant scoping: other tenants' objects are NotFound."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts import partners, portals, users
from accounts.partners import NewPartner
from accounts.tenancy import VISIBLE, fetch_scoped, load_scope
from billing import ledger
from config.errors import Conflict, Forbidden, Invalid, NotFound
from tests.billing.conftest import make_partner
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD


async def test_tree_rules(conn, owner):
    r1 = await make_partner(conn, owner, owner.partner_id, "reseller", "R1")
    s1 = await load_scope(conn, r1.id)
    r2 = await make_partner(conn, s1, r1.id, "reseller", "R2")        # resellers of resellers
    s2 = await load_scope(conn, r2.id)
    c = await make_partner(conn, s2, r2.id, "client", "C", currency="USD")
    assert c.path == (owner.partner_id, r1.id, r2.id, c.id) and c.depth == 3
    assert c.currency == "USD" and r2.currency == "EUR"
    with pytest.raises(Invalid):                                     # clients have no children
        await partners.create_partner(conn, owner, c.id, NewPartner(kind="client", name="X"))
    with pytest.raises(Invalid):
        await partners.create_partner(conn, owner, r1.id, NewPartner(kind="owner", name="X"))
    with pytest.raises(NotFound):                                    # R2 cannot reach above itself
        await partners.create_partner(conn, s2, r1.id, NewPartner(kind="client", name="X"))
    below_r1 = await partners.list_partners(conn, s1)
    assert [p.id for p in below_r1] == [r2.id, c.id]
    assert [p.id for p in await partners.list_partners(conn, s1, parent_id=r1.id)] == [r2.id]
    assert [p.id for p in await partners.list_partners(conn, owner, kind="client")] == [c.id]


async def test_partner_options_status_and_credit_limit(conn, owner):
    r = await make_partner(conn, owner, owner.partner_id, "reseller", "R")
    rscope = await load_scope(conn, r.id)
    c = await make_partner(conn, rscope, r.id, "client", "C")
    updated = await partners.update_partner(conn, rscope, c.id, mo_enabled=True, allow_signup=True)
    assert updated.mo_enabled and updated.allow_signup
    with pytest.raises(Invalid):
        await partners.update_partner(conn, rscope, c.id, balance=Decimal(5))
    with pytest.raises(Forbidden):                                  # nobody raises its own limit
        await partners.set_credit_limit(conn, rscope, r.id, Decimal(100))
    assert (await partners.set_credit_limit(conn, rscope, c.id, Decimal("2.5"))).credit_limit == Decimal("2.5")
    assert (await partners.set_status(conn, rscope, c.id, "blocked")).status == "blocked"
    await ledger.adjust_balance(conn, rscope, c.id, Decimal("-2"), type="payment")
    with pytest.raises(Conflict):                                   # the balance is already below it
        await partners.set_credit_limit(conn, rscope, c.id, Decimal("1"))


async def test_scoping_hides_other_tenants(conn, owner):
    a = await make_partner(conn, owner, owner.partner_id, "reseller", "A", balance="5")
    b = await make_partner(conn, owner, owner.partner_id, "reseller", "B")
    sa, sb = await load_scope(conn, a.id), await load_scope(conn, b.id)
    a_client = await make_partner(conn, sa, a.id, "client", "A-client")
    user = await users.create_user(conn, sa, a_client.id, users.NewUser("shop@a.test", "password-1"))
    (tx,) = await ledger.list_transactions(conn, sa, a.id)
    for call in (
        partners.get_partner(conn, sb, a.id),
        partners.get_partner(conn, sb, a_client.id),
        partners.get_partner(conn, sa, owner.partner_id),           # nor above
        users.get_user(conn, sb, user.id),
        ledger.list_transactions(conn, sb, a.id),
        ledger.transaction_details(conn, sb, tx.id),
        ledger.balance_of(conn, sb, a.id),
    ):
        with pytest.raises(NotFound):
            await call
    assert await users.list_users(conn, sb) == []
    assert (await users.get_user(conn, sa, user.id)).email == "shop@a.test"
    assert (await users.get_user(conn, owner, user.id)).role == "user"
    rows = await fetch_scoped(conn, sb, f"SELECT p.id FROM partners p WHERE {VISIBLE}")
    assert [r["id"] for r in rows] == [b.id]


async def test_topups_come_from_above(conn, owner):
    a = await make_partner(conn, owner, owner.partner_id, "reseller", "A")
    sa = await load_scope(conn, a.id)
    with pytest.raises(Forbidden):
        await ledger.adjust_balance(conn, sa, a.id, Decimal(10))
    tx = await ledger.adjust_balance(conn, owner, a.id, Decimal("10.5"), description="invoice 17")
    assert (tx.type, tx.amount, tx.counterparty_id, tx.description) == (
        "topup", Decimal("10.5"), owner.partner_id, "invoice 17")
    from billing.errors import InsufficientBalance

    with pytest.raises(InsufficientBalance):
        await ledger.adjust_balance(conn, owner, a.id, Decimal("-11"), type="payment")
    assert (await ledger.balance_of(conn, sa, a.id)).balance == Decimal("10.5")
    with pytest.raises(Invalid):
        await ledger.adjust_balance(conn, owner, a.id, Decimal("0.0000001"))


async def test_portal_for_host_falls_back_to_default(conn, owner):
    r = await make_partner(conn, owner, owner.partner_id, "reseller", "R")
    rscope = await load_scope(conn, r.id)
    mine = await portals.create_portal(conn, rscope, portals.NewPortal(
        name="Resell SMS", host="SMS.Resell.Example", require_2fa=True, languages=("en", "tr")))
    assert mine.host == "sms.resell.example" and mine.owner_partner_id == r.id
    assert (await portals.portal_for_host(conn, "sms.resell.example:8443")).id == mine.id
    assert (await portals.portal_for_host(conn, "SMS.RESELL.EXAMPLE.")).id == mine.id
    default = await portals.portal_for_host(conn, "unknown.example")
    assert default.is_default and default.id != mine.id
    assert (await portals.portal_for_host(conn, "bad host!")).is_default
    with pytest.raises(Conflict):
        await portals.create_portal(conn, owner, portals.NewPortal(name="Dup", host="sms.resell.example"))
    with pytest.raises(Invalid):
        await portals.create_portal(conn, owner, portals.NewPortal(name="X", host="x.test", languages=("de",)))
    with pytest.raises(NotFound):                                    # a reseller cannot see the owner's portal
        await portals.get_portal(conn, rscope, default.id)
    updated = await portals.update_portal(conn, rscope, mine.id, allow_signup=True, default_language="tr")
    assert updated.allow_signup and updated.default_language == "tr"
    # a client of the reseller may live on the reseller's portal, not on one of another branch
    c = await partners.create_partner(conn, rscope, r.id, NewPartner(kind="client", name="C", portal_id=mine.id))
    assert c.portal_id == mine.id
    other = await make_partner(conn, owner, owner.partner_id, "reseller", "Other")
    with pytest.raises(Invalid):
        await partners.create_partner(conn, owner, other.id,
                                      NewPartner(kind="client", name="D", portal_id=mine.id))


async def test_users_roles_passwords_and_unique_email_per_portal(conn, owner):
    r = await make_partner(conn, owner, owner.partner_id, "reseller", "R")
    admin = await users.create_user(conn, owner, r.id, users.NewUser("Boss@R.test", "password-1"))
    assert admin.role == "reseller_admin" and admin.status == "active"
    with pytest.raises(Conflict):
        await users.create_user(conn, owner, r.id, users.NewUser("boss@r.TEST", "password-2"))
    with pytest.raises(Invalid):
        await users.create_user(conn, owner, r.id, users.NewUser("not-an-email", "password-2"))
    portal_id = admin.portal_id
    assert (await users.authenticate(conn, portal_id, "boss@r.test", "password-1")).id == admin.id
    assert await users.authenticate(conn, portal_id, "boss@r.test", "wrong") is None
    assert await users.authenticate(conn, portal_id, "nobody@r.test", "password-1") is None
    seeded = await users.authenticate(conn, portal_id, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert seeded is not None and seeded.role == "owner_admin"
    stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", admin.id)
    assert stored.startswith("$argon2id$") and not users.needs_rehash(stored)
    await users.set_password(conn, owner, admin.id, "new-password")
    assert await users.authenticate(conn, portal_id, "boss@r.test", "new-password")
    assert (await users.set_user_status(conn, owner, admin.id, "disabled")).status == "disabled"
    assert (await users.find_by_email(conn, portal_id, "BOSS@r.test")).id == admin.id
