"""Sign-up: the form, each validation rule, CAPTCHA, confirmation by e-mail over real SMTP."""

from __future__ import annotations

import re

import pytest

from portal import captcha
from tests.portal.conftest import html_of, link_in, page, path_of, post, sign_in, text_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def open_portal(db):
    await db.execute("UPDATE portals SET allow_signup = true WHERE is_default")


async def signup_form(client, redis) -> tuple[str, str, str]:
    """(csrf token, captcha id, captcha answer) of a fresh sign-up page."""
    status, html = await page(client, "/signup")
    assert status == 200
    token = re.search(r'name="_csrf" value="([^"]+)"', html).group(1)
    challenge = re.search(r'name="captcha_id" value="([^"]+)"', html).group(1)
    return token, challenge, await captcha.answer_for_tests(redis, challenge)


def good_data(challenge: str, answer: str, **changes) -> dict:
    data = {
        "first_name": "Grace", "last_name": "Hopper", "company": "Cobol Inc",
        "email": "grace@cobol.test", "password": "a-long-password", "password_confirm": "a-long-password",
        "language": "en", "captcha_id": challenge, "captcha": answer, "accept_terms": "1",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


async def test_signup_closed_portal_is_404(client):
    status, _ = await page(client, "/signup")
    assert status == 404
    status, html = await page(client, "/signin")
    assert "/signup" not in html


async def test_signup_confirm_and_sign_in(client, db, redis, mailbox, open_portal):
    token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer.lower(), language="es"),
                          token=token)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/signup/sent"
    status, html = await page(client, "/signup/sent")
    assert "grace@cobol.test" in html

    user = await db.fetchrow("SELECT * FROM users WHERE email = 'grace@cobol.test'")
    assert user["status"] == "pending" and user["language"] == "es" and user["role"] == "user"
    partner = await db.fetchrow("SELECT * FROM partners WHERE id = $1", user["partner_id"])
    owner = await db.fetchval("SELECT owner_partner_id FROM portals WHERE is_default")
    assert partner["kind"] == "client" and partner["parent_id"] == owner
    assert partner["company_name"] == "Cobol Inc"
    consents = {r["kind"] for r in await db.fetch("SELECT kind FROM user_consents WHERE user_id = $1", user["id"])}
    assert consents == {"terms", "privacy"}

    # Not usable before confirmation.
    response = await post(client, "/signin", {"email": "grace@cobol.test", "password": "a-long-password"})
    assert response.status == 400
    assert "Confirm your e-mail" in await response.text() or "Confirma" in await response.text()

    mail = mailbox.last_to("grace@cobol.test")
    assert "Herald" in mail["From"] and "noreply@herald.test" in mail["From"]
    # Written in the language chosen at sign-up.
    assert "Confirma" in mail["Subject"]
    link = link_in(mail, "/signup/confirm/")
    assert link in html_of(mail)
    path = path_of(link)
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/signin"
    assert await db.fetchval("SELECT status FROM users WHERE id = $1", user["id"]) == "active"

    # The link works once.
    status, _ = await page(client, path)
    assert status == 404

    await sign_in(client, "grace@cobol.test", "a-long-password")
    status, html = await page(client, "/")
    assert status == 200 and "Grace" in html


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"first_name": ""}, "first_name", "This field is required."),
    ({"last_name": "  "}, "last_name", "This field is required."),
    ({"company": ""}, "company", "This field is required."),
    ({"email": "not-an-address"}, "email", "Enter a valid e-mail address."),
    ({"password": "short", "password_confirm": "short"}, "password", "Use at least 8 characters."),
    ({"password_confirm": "something-else"}, "password_confirm", "The passwords do not match."),
    ({"captcha": "WRONG"}, "captcha", "The characters do not match the picture."),
    ({"accept_terms": None}, "accept_terms", "This box must be ticked."),
    ({"language": "de"}, "language", "Choose one of the options."),
    ({"first_name": "x" * 101}, "first_name", "Use at most 100 characters."),
])
async def test_signup_validation(client, db, redis, open_portal, changes, field, message):
    token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer, **changes), token=token)
    html = await response.text()
    assert response.status == 400
    error = re.search(rf'id="{field}-error">([^<]+)<', html)
    assert error, f"no error next to {field}"
    assert message in error.group(1)
    assert 'aria-invalid="true"' in html
    # Typed values come back (passwords never do).
    if field != "first_name":
        assert 'value="Grace"' in html
    assert "a-long-password" not in html
    assert await db.fetchval("SELECT count(*) FROM users WHERE email = 'grace@cobol.test'") == 0


async def test_captcha_is_single_use_and_image_served(client, redis, open_portal):
    token, challenge, answer = await signup_form(client, redis)
    response = await client.get(f"/captcha/{challenge}.png")
    assert response.status == 200 and response.content_type == "image/png"
    assert (await response.read())[:8] == b"\x89PNG\r\n\x1a\n"
    # A wrong guess spends the challenge: the right answer afterwards fails too.
    await post(client, "/signup", good_data(challenge, "ZZZZZ"), token=token)
    response = await post(client, "/signup", good_data(challenge, answer), token=token)
    assert response.status == 400
    assert "do not match the picture" in await response.text()
    assert (await client.get(f"/captcha/{challenge}.png")).status == 404


async def test_duplicate_email(client, db, redis, open_portal):
    from tests.portal.conftest import make_client_user

    await make_client_user(db, "Grace@Cobol.test")
    token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer), token=token)
    assert response.status == 400
    assert re.search(r'id="email-error">[^<]*already exists', await response.text())


async def test_terms_need_data_processing_consent(client, db, redis, open_portal):
    await db.execute("UPDATE portals SET terms_text = 'Be nice.' WHERE is_default")
    token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer), token=token)
    assert response.status == 400
    assert 'id="accept_data_processing-error"' in await response.text()

    token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer, accept_data_processing="1"),
                          token=token)
    assert response.status == 303
    user_id = await db.fetchval("SELECT id FROM users WHERE email = 'grace@cobol.test'")
    kinds = {r["kind"] for r in await db.fetch("SELECT kind FROM user_consents WHERE user_id = $1", user_id)}
    assert kinds == {"terms", "privacy", "data_processing"}
    status, html = await page(client, "/terms")
    assert status == 200 and "Be nice." in html


async def test_custom_registration_fields(client, db, redis, open_portal):
    owner = await db.fetchval("SELECT owner_partner_id FROM portals WHERE is_default")
    await db.execute(
        """INSERT INTO registration_fields (partner_id, key, label, kind, required, options, position)
           VALUES ($1, 'vat', 'VAT number', 'text', true, '{}', 1),
                  ($1, 'volume', 'Monthly volume', 'select', false, '{small,large}', 2)""",
        owner,
    )
    token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer), token=token)
    html = await response.text()
    assert response.status == 400
    assert "VAT number" in html and re.search(r'id="cf_vat-error"', html)

    token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer, cf_vat="DE123", cf_volume="large"),
                          token=token)
    assert response.status == 303
    fields = await db.fetchval("SELECT custom_fields FROM users WHERE email = 'grace@cobol.test'")
    assert fields == {"vat": "DE123", "volume": "large"}


async def test_signup_without_csrf_is_403(client, redis, open_portal):
    _token, challenge, answer = await signup_form(client, redis)
    response = await post(client, "/signup", good_data(challenge, answer), csrf=False)
    assert response.status == 403
    response = await post(client, "/signup", good_data(challenge, answer), token="forged")
    assert response.status == 403


async def test_resend_confirmation(client, db, redis, mailbox, open_portal):
    token, challenge, answer = await signup_form(client, redis)
    await post(client, "/signup", good_data(challenge, answer), token=token)
    first = link_in(mailbox.last_to("grace@cobol.test"), "/signup/confirm/")
    response = await post(client, "/signup/resend", {"email": "grace@cobol.test"})
    assert response.status == 303
    second = link_in(mailbox.last_to("grace@cobol.test"), "/signup/confirm/")
    assert first != second
    # The newer link retires the older one.
    assert (await client.get(path_of(first), allow_redirects=False)).status == 404
    assert "confirm" in text_of(mailbox.last_to("grace@cobol.test")).lower()
    assert (await client.get(path_of(second), allow_redirects=False)).status == 303
