"""Account Settings: My Account and Security (password, two-factor, sessions)."""

from __future__ import annotations

import re

import pyotp
import pytest

from tests.portal.conftest import PASSWORD, page, post, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_my_account_shows_and_saves(client, db, signed_in):
    status, html = await page(client, "/account")
    assert status == 200 and 'value="Ada"' in html and 'value="Lovelace"' in html
    assert "ada@client.test" in html
    response = await post(client, "/account", {"first_name": "Augusta", "last_name": "King"})
    assert response.status == 303 and response.headers["Location"] == "/account"
    row = await db.fetchrow("SELECT first_name, last_name FROM users WHERE id = $1", signed_in["id"])
    assert tuple(row) == ("Augusta", "King")
    status, html = await page(client, "/account")
    assert "Your details are saved." in html and 'value="Augusta"' in html


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"first_name": "", "last_name": "King"}, "first_name", "This field is required."),
    ({"first_name": "Augusta", "last_name": ""}, "last_name", "This field is required."),
    ({"first_name": "A" * 101, "last_name": "King"}, "first_name", "Use at most 100 characters."),
])
async def test_my_account_errors(client, db, signed_in, data, field, message):
    response = await post(client, "/account", data)
    assert response.status == 400
    html = await response.text()
    assert re.search(rf'id="{field}-error">[^<]*{re.escape(message)}', html)
    assert await db.fetchval("SELECT first_name FROM users WHERE id = $1", signed_in["id"]) == "Ada"


async def test_custom_fields_in_my_account(client, db, signed_in):
    owner = await db.fetchval("SELECT owner_partner_id FROM portals WHERE is_default")
    await db.execute(
        "INSERT INTO registration_fields (partner_id, key, label, required) VALUES ($1, 'vat', 'VAT number', true)",
        owner,
    )
    _status, html = await page(client, "/account")
    assert "VAT number" in html
    response = await post(client, "/account", {"first_name": "Ada", "last_name": "Lovelace", "cf_vat": ""})
    assert response.status == 400 and 'id="cf_vat-error"' in await response.text()
    response = await post(client, "/account", {"first_name": "Ada", "last_name": "Lovelace", "cf_vat": "GB1"})
    assert response.status == 303
    assert await db.fetchval("SELECT custom_fields FROM users WHERE id = $1", signed_in["id"]) == {"vat": "GB1"}


async def test_my_account_needs_csrf(client, signed_in):
    response = await post(client, "/account", {"first_name": "X", "last_name": "Y"}, csrf=False)
    assert response.status == 403


async def test_change_password(client, app, make_client, signed_in):
    other = await make_client(app)
    await sign_in(other, signed_in["email"])
    for data, field, message in [
        ({"current_password": "wrong-one", "password": "brand-new-pass", "password_confirm": "brand-new-pass"},
         "current_password", "This is not your current password."),
        ({"current_password": PASSWORD, "password": "short", "password_confirm": "short"},
         "password", "Use at least 8 characters."),
        ({"current_password": PASSWORD, "password": "brand-new-pass", "password_confirm": "brand-new-pasS"},
         "password_confirm", "The passwords do not match."),
        ({"current_password": "", "password": "brand-new-pass", "password_confirm": "brand-new-pass"},
         "current_password", "This field is required."),
    ]:
        response = await post(client, "/account/security/password", data)
        assert response.status == 400
        assert re.search(rf'id="{field}-error">[^<]*{re.escape(message)}', await response.text()), message
    response = await post(client, "/account/security/password", {
        "current_password": PASSWORD, "password": "brand-new-pass", "password_confirm": "brand-new-pass"})
    assert response.status == 303
    # This browser stays signed in; the other one is signed out.
    assert (await page(client, "/account/security"))[0] == 200
    assert (await page(other, "/"))[0] == 303
    await post(client, "/signout", {})
    await sign_in(client, signed_in["email"], "brand-new-pass")


async def test_turn_on_two_factor_then_reset_and_off(client, db, signed_in):
    _status, html = await page(client, "/account/security")
    assert "Set up two-factor authentication" in html
    response = await post(client, "/account/security/2fa/new", {})
    assert response.status == 303
    _status, html = await page(client, "/account/security")
    assert "<svg" in html and 'class="qr"' in html
    secret = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', html).group(1).replace(" ", "")

    response = await post(client, "/account/security/2fa/confirm", {"code": "123456"})
    assert response.status == 400 and "That code is not right" in await response.text()
    assert await db.fetchval("SELECT totp_enabled FROM users WHERE id = $1", signed_in["id"]) is False
    response = await post(client, "/account/security/2fa/confirm", {"code": pyotp.TOTP(secret).now()})
    assert response.status == 303
    row = await db.fetchrow("SELECT totp_secret, totp_enabled FROM users WHERE id = $1", signed_in["id"])
    assert row["totp_secret"] == secret and row["totp_enabled"]

    # Reset: a new key, the old one still in force until the new one is confirmed.
    await post(client, "/account/security/2fa/new", {})
    _status, html = await page(client, "/account/security")
    new_secret = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', html).group(1).replace(" ", "")
    assert new_secret != secret
    await post(client, "/account/security/2fa/cancel", {})
    assert await db.fetchval("SELECT totp_secret FROM users WHERE id = $1", signed_in["id"]) == secret

    response = await post(client, "/account/security/2fa/disable", {"current_password": "wrong"})
    assert response.status == 400 and "This is not your current password." in await response.text()
    response = await post(client, "/account/security/2fa/disable", {"current_password": PASSWORD})
    assert response.status == 303
    row = await db.fetchrow("SELECT totp_secret, totp_enabled FROM users WHERE id = $1", signed_in["id"])
    assert row["totp_secret"] is None and not row["totp_enabled"]


async def test_required_two_factor_cannot_be_turned_off(client, db, signed_in):
    await db.execute("UPDATE portals SET require_2fa = true WHERE is_default")
    _status, html = await page(client, "/account/security")
    assert "requires two-factor authentication" in html
    response = await post(client, "/account/security/2fa/disable", {"current_password": PASSWORD})
    assert response.status == 403
