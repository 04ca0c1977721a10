"""Admin Panel forms over HTTP: good input lands in billing, each bad input shows its field error."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import pytest_asyncio
from aiohttp import FormData

from accounts import partners, senders
from accounts.partners import NewPartner
from accounts.tenancy import Scope
from accounts.users import verify_password
from gateway.intake import smpp_accounts
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.portal.admin_world import RESELLER_EMAIL, build_world
from tests.portal.conftest import page, post, sign_in, token_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def world(db):
    return await build_world(db)


@pytest_asyncio.fixture(loop_scope="session")
async def owner(client, world):
    await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return client


async def submit(client, path: str, data: dict, *, token: str | None = None) -> tuple[int, str, str]:
    response = await post(client, path, data, token=token)
    return response.status, await response.text(), response.headers.get("Location", "")


def field_error(html: str, name: str) -> bool:
    return f'id="{name}-error"' in html


async def expect_errors(client, path: str, good: dict, bad: list[tuple[dict, str]]) -> None:
    """Each change of ``good`` in ``bad`` answers 400 with the error next to the named field."""
    token = await token_for(client, path if not path.endswith(("/topup", "/payment")) else "/admin/partners")
    for change, name in bad:
        status, html, _ = await submit(client, path, {**good, **change}, token=token)
        assert status == 400, (path, change)
        assert field_error(html, name), (path, change, name)


async def test_portal_create_and_edit(owner, db, mailbox):
    good = {"name": "Brand", "host": "sms.brand.test", "primary_color": "#112233", "languages": "es, en",
            "support_email": "help@brand.test", "terms_text": "Terms", "privacy_text": "Privacy",
            "allow_signup": "1", "logo_url": "https://brand.test/logo.png"}
    await expect_errors(owner, "/admin/portals/new", good, [
        ({"name": ""}, "name"), ({"host": "bad host!"}, "host"), ({"primary_color": "blue"}, "primary_color"),
        ({"languages": "en, xx"}, "languages"), ({"host": "localhost"}, "host"),
    ])
    status, _, location = await submit(owner, "/admin/portals/new", good)
    assert (status, location) == (303, "/admin/portals")
    row = await db.fetchrow("SELECT * FROM portals WHERE host = 'sms.brand.test'")
    assert row["languages"] == ["es", "en"] and row["default_language"] == "es" and row["allow_signup"]
    assert not row["require_2fa"] and row["primary_color"] == "#112233"
    _, html = await page(owner, "/admin/portals")
    assert "Portal Brand created." in html and "sms.brand.test" in html
    status, _, _ = await submit(owner, f"/admin/portals/{row['id']}", {**good, "require_2fa": "1", "name": "Brand 2"})
    assert status == 303
    assert await db.fetchval("SELECT require_2fa FROM portals WHERE id = $1", row["id"])
    # switching 2FA on for a portal with users mails each of them a sign-in key
    default = await db.fetchrow("SELECT * FROM portals WHERE is_default")
    status, _, _ = await submit(owner, f"/admin/portals/{default['id']}", {
        "name": default["name"], "host": default["host"], "primary_color": "#2563eb", "languages": "en",
        "require_2fa": "1"})
    assert status == 303
    assert mailbox.to("inside@client.test") and mailbox.to("reseller@admin.test")
    assert await db.fetchval("SELECT totp_enabled FROM users WHERE email = 'inside@client.test'")
    _, html = await page(owner, "/admin/portals")
    assert "Two-factor authentication is now required. Sign-in keys e-mailed: 4." in html


async def test_partner_create_block_top_up_and_pay(owner, db, world):
    good = {"parent_id": str(world.reseller_id), "kind": "client", "name": "Newco", "company_name": "Newco Ltd",
            "currency": "usd", "credit_limit": "15.5", "mo_enabled": "1", "company_email": "a@newco.test"}
    await expect_errors(owner, "/admin/partners/new", good, [
        ({"name": ""}, "name"), ({"currency": "dollars"}, "currency"), ({"credit_limit": "-1"}, "credit_limit"),
        ({"credit_limit": "lots"}, "credit_limit"), ({"kind": "owner"}, "kind"),
        ({"parent_id": str(world.outside_id)}, "parent_id"),
    ])
    # a client cannot have partners below it: billing's rule shows next to "Type"
    inside_parent = {**good, "parent_id": str(world.reseller_id)}
    status, _, location = await submit(owner, "/admin/partners/new", inside_parent)
    assert status == 303
    new_id = int(location.rsplit("/", 1)[1])
    row = await db.fetchrow("SELECT * FROM partners WHERE id = $1", new_id)
    assert (row["parent_id"], row["kind"], row["currency"].strip(), row["credit_limit"], row["mo_enabled"]) == (
        world.reseller_id, "client", "USD", Decimal("15.5"), True)

    _, html = await page(owner, "/admin/partners")
    table = html[html.index("<tbody>"):]
    assert table.index("Resale") < table.index("Newco") < table.index("Outside")  # tree order
    # block / unblock
    assert (await submit(owner, f"/admin/partners/{new_id}/block", {}))[0] == 303
    assert await db.fetchval("SELECT status FROM partners WHERE id = $1", new_id) == "blocked"
    assert (await submit(owner, f"/admin/partners/{new_id}/unblock", {}))[0] == 303
    assert await db.fetchval("SELECT status FROM partners WHERE id = $1", new_id) == "active"
    # top-up and payment land in the ledger
    path = f"/admin/partners/{new_id}"
    await expect_errors(owner, f"{path}/topup", {"amount": "10"}, [
        ({"amount": ""}, "amount"), ({"amount": "0"}, "amount"), ({"amount": "ten"}, "amount"),
        ({"amount": "1.0000001"}, "amount"),
    ])
    assert (await submit(owner, f"{path}/topup", {"amount": "25.50", "description": "wire 42"}))[0] == 303
    assert (await submit(owner, f"{path}/payment", {"amount": "4,5"}))[0] == 303
    rows = await db.fetch("SELECT type, amount, description, counterparty_id FROM transactions "
                          "WHERE partner_id = $1 ORDER BY id", new_id)
    assert [(r["type"], r["amount"]) for r in rows] == [("topup", Decimal("25.5")), ("payment", Decimal("4.5"))]
    assert rows[0]["description"] == "wire 42" and rows[0]["counterparty_id"] == 1
    assert await db.fetchval("SELECT balance FROM partners WHERE id = $1", new_id) == Decimal("30")
    _, html = await page(owner, path)
    assert "wire 42" in html and "Top-up" in html
    # a debit beyond balance plus credit is refused above the form
    status, html, _ = await submit(owner, f"{path}/topup", {"amount": "-1000"})
    assert status == 400 and "alert-error" in html
    # edit: company fields and credit limit
    edit = {"name": "Newco 2", "credit_limit": "3", "company_name": "Newco Ltd"}
    await expect_errors(owner, f"{path}/edit", edit, [({"name": ""}, "name"), ({"credit_limit": "-3"}, "credit_limit")])
    assert (await submit(owner, f"{path}/edit", edit))[0] == 303
    row = await db.fetchrow("SELECT name, credit_limit, mo_enabled FROM partners WHERE id = $1", new_id)
    assert (row["name"], row["credit_limit"], row["mo_enabled"]) == ("Newco 2", Decimal("3"), False)


async def test_user_create_disable_enable(owner, db, world):
    good = {"partner_id": str(world.inside_id), "email": "new@inside.test", "password": "long-enough-1",
            "first_name": "Grace", "language": "es"}
    await expect_errors(owner, "/admin/users/new", good, [
        ({"email": "not-an-address"}, "email"), ({"password": "short"}, "password"),
        ({"partner_id": "999999"}, "partner_id"), ({"email": "inside@client.test"}, "email"),
        ({"language": "xx"}, "language"),
    ])
    status, _, location = await submit(owner, "/admin/users/new", good)
    assert status == 303 and location == f"/admin/users?partner={world.inside_id}"
    row = await db.fetchrow("SELECT id, role, language, status FROM users WHERE email = 'new@inside.test'")
    assert (row["role"], row["language"], row["status"]) == ("user", "es", "active")
    _, html = await page(owner, location)
    assert "new@inside.test" in html and "outside@client.test" not in html
    assert (await submit(owner, f"/admin/users/{row['id']}/disable", {}))[0] == 303
    assert await db.fetchval("SELECT status FROM users WHERE id = $1", row["id"]) == "disabled"
    assert (await submit(owner, f"/admin/users/{row['id']}/enable", {}))[0] == 303
    assert await db.fetchval("SELECT status FROM users WHERE id = $1", row["id"]) == "active"


async def test_sender_id_chain_reseller_then_owner(client, db, world, app, make_client):
    inside = Scope(world.inside_id, "client", world.inside_user)
    sid = (await senders.request_sender_id(db, inside, channel="sms", sender="InBrand", comment="for alerts")).id
    declined = (await senders.request_sender_id(db, inside, channel="sms", sender="NoBrand")).id
    await sign_in(client, RESELLER_EMAIL)
    _, html = await page(client, "/admin/sender-ids")
    assert "InBrand" in html and "OutBrand" not in html
    _, html = await page(client, f"/admin/sender-ids/{sid}")
    assert 'name="valid_until"' not in html  # only the owner sets the period
    assert (await submit(client, f"/admin/sender-ids/{sid}/approve", {"comment": "ok by reseller"}))[0] == 303
    row = await db.fetchrow("SELECT state, status, pending_partner_id FROM sender_ids WHERE id = $1", sid)
    assert (row["state"], row["status"], row["pending_partner_id"]) == ("in_progress", "waiting", 1)
    # no longer the reseller's turn: the form is gone and a replay is refused above the form
    status, html, _ = await submit(client, f"/admin/sender-ids/{sid}/approve", {"comment": "again"})
    assert status == 400 and "alert-error" in html
    # decline needs a reason
    await expect_errors(client, f"/admin/sender-ids/{declined}/decline", {"comment": "no"}, [({"comment": ""}, "comment")])
    assert (await submit(client, f"/admin/sender-ids/{declined}/decline", {"comment": "not your brand"}))[0] == 303
    assert await db.fetchval("SELECT state FROM sender_ids WHERE id = $1", declined) == "declined"

    owner = await make_client(app)
    await sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD)
    await expect_errors(owner, f"/admin/sender-ids/{sid}/approve", {"valid_until": "2099-01-31"}, [
        ({"valid_until": "31/01/2099"}, "valid_until"), ({"valid_until": "2001-01-01"}, "valid_until"),
    ])
    assert (await submit(owner, f"/admin/sender-ids/{sid}/approve", {"valid_until": "2099-01-31"}))[0] == 303
    row = await db.fetchrow("SELECT state, status, valid_until FROM sender_ids WHERE id = $1", sid)
    assert (row["state"], row["status"], row["valid_until"].date().isoformat()) == ("confirmed", "enabled", "2099-01-31")
    _, html = await page(owner, f"/admin/sender-ids/{sid}")
    for text in ("Requested", "Approved and passed on", "ok by reseller", "Approved"):
        assert text in html


async def test_vendor_products_and_rates(owner, db, world, redis):
    good = {"name": "Tele", "channel": "sms", "protocol": "smpp", "smpp_host": "127.0.0.1", "smpp_port": "2776",
            "system_id": "herald2", "password": "pw12", "system_type": "", "bind_type": "transmitter",
            "tps": "50", "window_size": "8", "enabled": "1"}
    await expect_errors(owner, "/admin/vendors/new", good, [
        ({"name": ""}, "name"), ({"smpp_host": ""}, "smpp_host"), ({"smpp_port": "70000"}, "smpp_port"),
        ({"smpp_port": "abc"}, "smpp_port"), ({"system_id": "x" * 16}, "system_id"),
        ({"password": "123456789"}, "password"), ({"tps": "0"}, "tps"), ({"bind_type": "both"}, "bind_type"),
        ({"name": "Carrier"}, "name"),
    ])
    status, _, location = await submit(owner, "/admin/vendors/new", good)
    assert status == 303
    vid = int(location.rsplit("/", 1)[1])
    row = await db.fetchrow("SELECT * FROM vendors WHERE id = $1", vid)
    assert (row["smpp_port"], row["bind_type"], row["tps"], row["window_size"], row["password"]) == (
        2776, "transmitter", 50, 8, "pw12")
    # edit keeps the password when left empty
    assert (await submit(owner, f"/admin/vendors/{vid}", {**good, "password": "", "tps": "60"}))[0] == 303
    row = await db.fetchrow("SELECT tps, password FROM vendors WHERE id = $1", vid)
    assert (row["tps"], row["password"]) == (60, "pw12")
    assert await db.fetchval("SELECT exclusive_bind FROM vendors WHERE id = $1", vid) is False
    assert (await submit(owner, f"/admin/vendors/{vid}", {**good, "exclusive_bind": "1"}))[0] == 303
    assert await db.fetchval("SELECT exclusive_bind FROM vendors WHERE id = $1", vid) is True
    _, html = await page(owner, "/admin/vendors")
    assert "Not connected" in html and "127.0.0.1:2776" in html
    # the bind state a connector publishes shows live, list and detail
    from gateway.send import bindstatus

    await bindstatus.publish(redis, vid, bindstatus.BOUND, ttl=30)
    _, html = await page(owner, "/admin/vendors")
    assert html.count(">Bound<") == 1  # only the vendor whose connector reported
    await bindstatus.publish(redis, vid, bindstatus.FAILED, "bind refused: 0x0000000e", ttl=30)
    _, html = await page(owner, f"/admin/vendors/{vid}")
    assert "Bind failed (bind refused: 0x0000000e)" in html
    await bindstatus.publish(redis, vid, bindstatus.STANDBY, "another process holds the bind", ttl=30)
    _, html = await page(owner, f"/admin/vendors/{vid}")
    assert "Standing by (another process holds the bind)" in html
    # Viber over HTTP
    viber = {**good, "name": "Viberco", "channel": "viber", "protocol": "http", "http_base_url": "ftp://x"}
    await expect_errors(owner, "/admin/vendors/new", viber, [({}, "http_base_url")])
    # products
    product = {"name": "Wholesale", "currency": "EUR", "traffic": "sms"}
    await expect_errors(owner, f"/admin/vendors/{vid}/products", product, [
        ({"currency": "EURO"}, "currency"), ({"traffic": "fax"}, "traffic"), ({"name": ""}, "name"),
    ])
    assert (await submit(owner, f"/admin/vendors/{vid}/products", product))[0] == 303
    pid = await db.fetchval("SELECT id FROM vendor_products WHERE vendor_id = $1", vid)
    csv = "mcc,mnc,price\n262,01,0.02\n262,*,0.03\n26,01,0.1\n262,02,abc\n"
    html = await upload(owner, f"/admin/vendors/{vid}/products/{pid}/rates", csv, token=await token_for(owner, f"/admin/vendors/{vid}"))
    assert "2 rows imported." in html and 'data-rejected-line="4"' in html and 'data-rejected-line="5"' in html
    assert await db.fetchval("SELECT count(*) FROM vendor_rates WHERE product_id = $1", pid) == 2
    response = await owner.get(f"/admin/vendors/{vid}/products/{pid}/rates.csv")
    assert response.status == 200 and response.content_type == "text/csv"
    assert "262,01,0.020000" in await response.text()


async def upload(client, path: str, text: str | None, *, token: str, extra: dict | None = None,
                 expect: int = 200, name: str = "file") -> str:
    form = FormData()
    form.add_field("_csrf", token)
    for key, value in (extra or {}).items():
        form.add_field(key, value)
    if text is not None:
        form.add_field(name, text.encode(), filename="rates.csv", content_type="text/csv")
    response = await client.post(path, data=form, allow_redirects=False)
    assert response.status == expect, await response.text()
    return await response.text()


async def test_reference_book_import_and_export(owner, db):
    token = await token_for(owner, "/admin/reference-book")
    csv = ("prefix,mcc,mnc,country,network\n"
           "4915199,262,01,DE,Test Net\n"
           "49x,262,01,DE,Bad prefix\n"
           "4915299,26,01,DE,Bad MCC\n"
           "4915399,262,02,DE,Other Net\n")
    html = await upload(owner, "/admin/reference-book", csv, token=token)
    assert "2 rows imported." in html and "2 lines rejected:" in html
    assert 'data-rejected-line="3"' in html and 'data-rejected-line="4"' in html
    assert "prefix must be 1 to 15 digits" in html and "MCC must be 3 digits" in html
    assert await db.fetchval("SELECT network FROM number_prefixes WHERE prefix = '4915399'") == "Other Net"
    # a wrong header, or no file, is an error next to the file field
    html = await upload(owner, "/admin/reference-book", "a,b\n1,2\n", token=token, expect=400)
    assert field_error(html, "file")
    html = await upload(owner, "/admin/reference-book", None, token=token, expect=400)
    assert field_error(html, "file")
    response = await owner.get("/admin/reference-book.csv")
    assert response.status == 200 and "attachment" in response.headers["Content-Disposition"]
    body = await response.text()
    assert body.startswith("prefix,mcc,mnc,country,network") and "4915399,262,02,DE,Other Net" in body


async def test_plan_create_rates_offer_and_assign(owner, db, world):
    good = {"name": "Retail SMS", "traffic": "sms", "billing_mode": "delivered", "currency": ""}
    await expect_errors(owner, "/admin/plans/new", good, [
        ({"name": ""}, "name"), ({"traffic": "fax"}, "traffic"), ({"billing_mode": "never"}, "billing_mode"),
        ({"name": "Owner SMS"}, "name"),
    ])
    status, _, location = await submit(owner, "/admin/plans/new", good)
    assert status == 303
    plan_id = int(location.rsplit("/", 1)[1])
    token = await token_for(owner, location)
    html = await upload(owner, f"{location}/rates", "mcc,mnc,price\n262,01,0.05\n262,x,1\n", token=token)
    assert "1 row imported." in html and 'data-rejected-line="3"' in html
    response = await owner.get(f"{location}/rates.csv")
    assert "262,01,0.050000" in await response.text()
    # offer / assign: only partners directly below
    await expect_errors(owner, f"{location}/offer", {"partner_id": str(world.outside_id), "action": "offer"}, [
        ({"partner_id": str(world.inside_id)}, "partner_id"), ({"action": "sell"}, "action"),
    ])
    assert (await submit(owner, f"{location}/offer", {"partner_id": str(world.reseller_id), "action": "offer"}))[0] == 303
    assert await db.fetchval("SELECT count(*) FROM plan_offers WHERE plan_id = $1", plan_id) == 1
    assert (await submit(owner, f"{location}/offer", {"partner_id": str(world.outside_id), "action": "assign"}))[0] == 303
    assert await db.fetchval("SELECT plan_id FROM partner_plans WHERE partner_id = $1", world.outside_id) == plan_id


async def test_pack_create_offer_and_assign(owner, db, world):
    good = {"name": "Starter", "channel": "sms", "message_count": "1000", "price": "20", "validity_days": "30",
            "countries": "de, fr", "billing_mode": "submitted"}
    await expect_errors(owner, "/admin/packs/new", good, [
        ({"name": ""}, "name"), ({"message_count": "0"}, "message_count"), ({"price": "-1"}, "price"),
        ({"price": "free"}, "price"), ({"validity_days": "x"}, "validity_days"), ({"countries": "Germany"}, "countries"),
        ({"countries": "ZZ"}, "countries"), ({"name": "Owner pack"}, "name"),
    ])
    status, _, location = await submit(owner, "/admin/packs/new", good)
    assert status == 303
    pack_id = int(location.rsplit("/", 1)[1])
    assert await db.fetchval("SELECT countries FROM packs WHERE id = $1", pack_id) == ["DE", "FR"]
    assert (await submit(owner, f"{location}/offer", {"partner_id": str(world.reseller_id), "action": "offer"}))[0] == 303
    # assigning buys it for the partner: without money it is refused, with money it is charged
    status, html, _ = await submit(owner, f"{location}/offer", {"partner_id": str(world.outside_id), "action": "assign"})
    assert status == 400 and "alert-error" in html
    await db.execute("UPDATE partners SET balance = 50 WHERE id = $1", world.outside_id)
    assert (await submit(owner, f"{location}/offer", {"partner_id": str(world.outside_id), "action": "assign"}))[0] == 303
    assert await db.fetchval("SELECT balance FROM partners WHERE id = $1", world.outside_id) == Decimal("30")
    assert await db.fetchval("SELECT remaining FROM pack_subscriptions WHERE partner_id = $1", world.outside_id) == 1000


async def test_smpp_account_create_and_edit(client, db, world):
    await sign_in(client, RESELLER_EMAIL)
    good = {"partner_id": str(world.inside_id), "system_id": "insmpp", "password": "pw123",
            "allowed_ips": "192.0.2.0/24, 198.51.100.7", "max_binds": "2", "tps": "20"}
    await expect_errors(client, "/admin/smpp-accounts/new", good, [
        ({"system_id": ""}, "system_id"), ({"system_id": "x" * 16}, "system_id"),
        ({"password": "123456789"}, "password"), ({"allowed_ips": "not-an-ip"}, "allowed_ips"),
        ({"max_binds": "0"}, "max_binds"), ({"tps": "-2"}, "tps"), ({"system_id": "outsmpp"}, "system_id"),
        ({"partner_id": str(world.outside_id)}, "partner_id"),
    ])
    assert (await submit(client, "/admin/smpp-accounts/new", good))[0] == 303
    account = await smpp_accounts.get_by_system_id(db, "insmpp")
    assert account.partner_id == world.inside_id and account.max_binds == 2 and account.tps == 20
    assert account.allowed_ips == ("192.0.2.0/24", "198.51.100.7/32")
    _, html = await page(client, "/admin/smpp-accounts")
    assert "insmpp" in html and "outsmpp" not in html
    edit = {"allowed_ips": "", "max_binds": "3", "tps": "", "enabled": ""}
    await expect_errors(client, f"/admin/smpp-accounts/{account.id}", edit, [({"max_binds": "0"}, "max_binds")])
    assert (await submit(client, f"/admin/smpp-accounts/{account.id}", {**edit, "password": "newpw"}))[0] == 303
    account = await smpp_accounts.get_account(db, account.id)
    assert (account.allowed_ips, account.max_binds, account.tps, account.enabled) == ((), 3, None, False)
    assert verify_password(account.password_hash, "newpw")


async def test_user_requests_a_sender_id_with_a_document(client, db, world, portal_settings, app, make_client):
    await sign_in(client, "inside@client.test")
    token = await token_for(client, "/sender-ids")
    for change, name in (({"sender": ""}, "sender"), ({"sender": "Way-too-long-name"}, "sender"),
                         ({"channel": "fax"}, "channel")):
        status, html, _ = await submit(client, "/sender-ids", {"channel": "sms", "sender": "Brand", **change}, token=token)
        assert status == 400 and field_error(html, name), change
    form = FormData()
    for key, value in (("_csrf", token), ("channel", "sms"), ("sender", "Brand"), ("comment", "alerts")):
        form.add_field(key, value)
    form.add_field("document", b"%PDF-1.4 letter", filename="letter.pdf", content_type="application/pdf")
    response = await client.post("/sender-ids", data=form, allow_redirects=False)
    assert response.status == 303
    row = await db.fetchrow("SELECT * FROM sender_ids WHERE sender = 'Brand'")
    assert (row["partner_id"], row["pending_partner_id"], row["status"]) == (world.inside_id, world.reseller_id, "waiting")
    doc = await db.fetchrow("SELECT * FROM sender_id_documents WHERE sender_id_id = $1", row["id"])
    assert doc["file_name"] == "letter.pdf" and doc["size_bytes"] == 15
    assert (portal_settings.var_dir / "uploads" / doc["storage_key"]).read_bytes() == b"%PDF-1.4 letter"
    _, html = await page(client, "/sender-ids")
    assert "Brand" in html and "Waiting for approval" in html
    # the approver downloads the document; other tenants cannot
    await sign_in(admin := await make_client(app), RESELLER_EMAIL)
    response = await admin.get(f"/admin/sender-ids/{row['id']}/documents/0")
    assert response.status == 200 and await response.read() == b"%PDF-1.4 letter"
    assert "letter.pdf" in response.headers["Content-Disposition"]
    assert (await admin.get(f"/admin/sender-ids/{row['id']}/documents/1")).status == 404
    assert (await admin.get(f"/admin/sender-ids/{world.outside_sender}/documents/0")).status == 404
    # asking twice for the same sender ID is refused next to the field
    status, html, _ = await submit(client, "/sender-ids", {"channel": "sms", "sender": "Brand"}, token=token)
    assert status == 400 and field_error(html, "sender")


async def test_partner_tree_pages_keep_tree_order(owner, db, world):
    for n in range(30):
        await partners.create_partner(db, world.owner, world.reseller_id, NewPartner("client", f"Shop {n:02}"))
    _, first = await page(owner, "/admin/partners")
    rows = first.count("data-row-id=")
    assert rows == 25
    next_link = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    _, second = await page(owner, next_link)
    names = re.findall(r'<a href="/admin/partners/\d+">([^<]+)</a>', first + second)
    assert len(names) == 33 and len(set(names)) == 33  # every partner once: Resale, Inside, 30 shops, Outside
    assert names[0] == "Resale" and names[-1] == "Outside"
    previous = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    _, back = await page(owner, previous)
    assert back.count("data-row-id=") == 25
    # filters narrow the tree and survive paging
    _, shops = await page(owner, "/admin/partners?q=shop+1")
    assert shops.count("data-row-id=") == 10
