"""Sign in, sessions, throttling, two-factor step, sign-out everywhere, password reset."""

from __future__ import annotations

import re

import pyotp
import pytest

from portal import throttle, twofactor
from portal.sessions import COOKIE_NAME
from tests.portal.conftest import (
    PASSWORD,
    link_in,
    make_client_user,
    page,
    path_of,
    post,
    sign_in,
    text_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def session_cookie(client) -> str:
    return next(c.value for c in client.session.cookie_jar if c.key == COOKIE_NAME)


async def test_unauthenticated_pages_redirect_to_sign_in(client):
    for path in ("/", "/contacts", "/campaigns", "/statistics", "/purchase", "/url-shortener",
                 "/finance", "/api-connections/keys", "/api-connections/methods", "/account",
                 "/account/security", "/top-up", "/api-connections/keys/new"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == f"/signin?next={path}"


async def test_unauthenticated_post_redirects_too(client):
    response = await post(client, "/api-connections/keys", {"name": "x", "ttl": "1d"})
    assert response.status == 303 and response.headers["Location"].startswith("/signin")


async def test_sign_in_rotates_session_and_sets_cookie_flags(client, app, make_client, user):
    await client.get("/signin")
    before = session_cookie(client)
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert response.status == 303
    cookie_header = response.headers.getall("Set-Cookie")
    session_header = next(h for h in cookie_header if h.startswith(COOKIE_NAME))
    assert "HttpOnly" in session_header and "SameSite=Lax" in session_header
    assert "Secure" not in session_header  # not behind HTTPS in tests
    after = session_cookie(client)
    assert after != before
    # The pre-sign-in session id is worthless now.
    stranger = await make_client(app)
    response = await stranger.get("/", headers={"Cookie": f"{COOKIE_NAME}={before}"}, allow_redirects=False)
    assert response.status == 303
    response = await stranger.get("/", headers={"Cookie": f"{COOKIE_NAME}={after}"}, allow_redirects=False)
    assert response.status == 200


async def test_sign_in_goes_back_to_next_but_never_elsewhere(client, user):
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD,
                                              "next": "/api-connections/keys"})
    assert response.headers["Location"] == "/api-connections/keys"
    await post(client, "/signout", {})
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD,
                                              "next": "//evil.test/x"})
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(("data", "message"), [
    ({"email": "ada@client.test", "password": "wrong-password"}, "Wrong e-mail or password."),
    ({"email": "nobody@client.test", "password": PASSWORD}, "Wrong e-mail or password."),
    ({"email": "", "password": PASSWORD}, "This field is required."),
    ({"email": "ada@client.test", "password": ""}, "This field is required."),
])
async def test_sign_in_errors(client, user, data, message):
    response = await post(client, "/signin", data)
    assert response.status == 400
    html = await response.text()
    assert message in html
    assert f'value="{data["email"]}"' in html  # the e-mail typed is kept


async def test_disabled_and_blocked_accounts(client, db, user):
    await db.execute("UPDATE users SET status = 'disabled' WHERE id = $1", user["id"])
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert response.status == 400 and "disabled" in await response.text()
    await db.execute("UPDATE users SET status = 'active' WHERE id = $1", user["id"])
    await db.execute("UPDATE partners SET status = 'blocked' WHERE id = $1", user["partner_id"])
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert response.status == 400 and "disabled" in await response.text()


async def test_blocking_signs_out_a_live_session(client, db, signed_in):
    assert (await page(client, "/"))[0] == 200
    await db.execute("UPDATE partners SET status = 'blocked' WHERE id = $1", signed_in["partner_id"])
    assert (await page(client, "/"))[0] == 303


async def test_failed_attempts_are_throttled_per_account(client, user):
    for _ in range(5):
        response = await post(client, "/signin", {"email": user["email"], "password": "nope-nope"})
        assert "Wrong e-mail or password." in await response.text()
    # Locked now, even with the right password.
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert response.status == 400
    assert re.search(r"Too many failed attempts\. Wait \d+ min", await response.text())


async def test_failed_attempts_are_throttled_per_address(client, redis, user):
    for index in range(3):
        await post(client, "/signin", {"email": f"guess{index}@client.test", "password": "x"})
    key = throttle.address_key("127.0.0.1")
    assert int(await redis.get(key)) == 3 and 0 < await redis.ttl(key) <= throttle.ADDRESS_LIMIT.window
    # Seventeen more failures from this address (other accounts) without paying for the hashing:
    await redis.incrby(key, throttle.ADDRESS_LIMIT.attempts - 3)
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert "Too many failed attempts" in await response.text()


async def test_sign_out_and_sign_out_everywhere(client, app, make_client, user):
    other = await make_client(app)
    await sign_in(client, user["email"])
    await sign_in(other, user["email"])
    assert (await page(other, "/"))[0] == 200

    response = await post(client, "/signout", {})
    assert response.status == 303 and response.headers["Location"] == "/signin"
    assert (await page(client, "/"))[0] == 303
    assert (await page(other, "/"))[0] == 200  # only that browser

    await sign_in(client, user["email"])
    response = await post(client, "/account/security/sessions/end", {})
    assert response.headers["Location"] == "/signin"
    assert (await page(client, "/"))[0] == 303
    assert (await page(other, "/"))[0] == 303


async def test_two_factor_step(client, db, user):
    secret = twofactor.new_secret()
    await db.execute("UPDATE users SET totp_secret = $2, totp_enabled = true WHERE id = $1",
                     user["id"], secret)
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert response.headers["Location"] == "/signin/verify"
    # Half signed-in is not signed in.
    assert (await page(client, "/"))[0] == 303
    status, html = await page(client, "/signin/verify")
    assert status == 200 and 'autocomplete="one-time-code"' in html

    response = await post(client, "/signin/verify", {"code": "000000"})
    assert response.status == 400 and "That code is not right" in await response.text()
    response = await post(client, "/signin/verify", {"code": ""})
    assert response.status == 400 and "This field is required." in await response.text()

    code = pyotp.TOTP(secret).now()
    response = await post(client, "/signin/verify", {"code": code})
    assert response.status == 303 and response.headers["Location"] == "/"
    assert (await page(client, "/"))[0] == 200

    # The same code cannot be used twice.
    await post(client, "/signout", {})
    await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    response = await post(client, "/signin/verify", {"code": code})
    assert response.status == 400


async def test_verify_without_password_step(client):
    assert (await page(client, "/signin/verify"))[0] == 303
    response = await post(client, "/signin/verify", {"code": "123456"})
    assert response.headers["Location"] == "/signin"


async def test_required_2fa_mails_a_secret_at_first_sign_in(client, db, user, mailbox):
    await db.execute("UPDATE portals SET require_2fa = true WHERE is_default")
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert response.headers["Location"] == "/signin/verify"
    mail = mailbox.last_to(user["email"])
    secret = re.search(r"^ {4}([A-Z2-7 ]{20,})\s*$", text_of(mail), re.M).group(1).replace(" ", "")
    assert await db.fetchval("SELECT totp_secret FROM users WHERE id = $1", user["id"]) == secret
    response = await post(client, "/signin/verify", {"code": pyotp.TOTP(secret).now()})
    assert response.headers["Location"] == "/"


async def test_password_reset_by_mail(client, db, app, make_client, user, mailbox):
    other = await make_client(app)
    await sign_in(other, user["email"])

    status, _html = await page(client, "/password/forgot")
    assert status == 200
    response = await post(client, "/password/forgot", {"email": "ADA@client.test"})
    assert response.status == 303
    mail = mailbox.last_to(user["email"])
    link = link_in(mail, "/password/reset/")
    assert (await page(client, path_of(link)))[0] == 200

    response = await post(client, path_of(link), {"password": "new-password-9", "password_confirm": "other"})
    assert response.status == 400 and "The passwords do not match." in await response.text()
    response = await post(client, path_of(link), {"password": "short", "password_confirm": "short"})
    assert response.status == 400 and "Use at least 8 characters." in await response.text()
    response = await post(client, path_of(link), {"password": "new-password-9", "password_confirm": "new-password-9"})
    assert response.status == 303

    # Used once; the old password is gone; sessions elsewhere ended.
    assert (await page(client, path_of(link)))[0] == 404
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD})
    assert response.status == 400
    await sign_in(client, user["email"], "new-password-9")
    assert (await page(other, "/"))[0] == 303


async def test_password_reset_for_unknown_address_sends_nothing(client, mailbox):
    before = len(mailbox.messages)
    response = await post(client, "/password/forgot", {"email": "nobody@nowhere.test"})
    assert response.status == 303
    assert len(mailbox.messages) == before
    response = await post(client, "/password/forgot", {"email": "not an address"})
    assert response.status == 400


async def test_unknown_reset_link(client):
    status, html = await page(client, "/password/reset/not-a-token")
    assert status == 404 and "This link does not work" in html


async def test_pending_user_can_ask_for_a_new_link(client, db, mailbox):
    await make_client_user(db, "pending@client.test", status="pending")
    response = await post(client, "/signin", {"email": "pending@client.test", "password": PASSWORD})
    html = await response.text()
    assert "Confirm your e-mail address first" in html and "/signup/resend" in html
    await post(client, "/signup/resend", {"email": "pending@client.test"})
    assert link_in(mailbox.last_to("pending@client.test"), "/signup/confirm/")


async def test_sign_in_without_csrf_is_403(client, user):
    response = await post(client, "/signin", {"email": user["email"], "password": PASSWORD}, csrf=False)
    assert response.status == 403
    assert "form expired" in await response.text()


async def test_secure_cookie_behind_https(portal_settings, redis, make_client, user):
    from gateway.runtime.main import build_app

    secure = await make_client(build_app(portal_settings.replace(secure_cookies=True)))
    response = await secure.get("/signin")
    header = next(h for h in response.headers.getall("Set-Cookie") if h.startswith(COOKIE_NAME))
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header
