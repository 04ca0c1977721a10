"""The frame: menu, balance, white label by host, language, theme, error pages, headers."""

from __future__ import annotations

import pytest

from tests.portal.conftest import make_client_user, page, post, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_dashboard_frame(client, db, signed_in):
    await db.execute("UPDATE partners SET balance = 1234.5, currency = 'USD', supervisor_email = 'boss@reseller.test'"
                     " WHERE id = $1", signed_in["partner_id"])
    status, html = await page(client, "/")
    assert status == 200
    for label in ("Dashboard", "Contacts", "Campaigns", "Statistics", "Purchase", "Finance", "API Connections"):
        assert f"<span>{label}</span>" in html
    assert "<span>URL Shortener</span>" not in html  # no short domain yet (tests/portal/test_shortener.py)
    assert 'aria-current="page"' in html
    assert "$1,234.50" in html and 'href="/top-up"' in html
    assert "Account Settings" in html and "Log out" in html and "Dark theme" in html
    assert "boss@reseller.test" in html


async def test_sections_not_built_yet(client, signed_in):
    for path in ("/campaigns", "/statistics", "/purchase", "/finance"):
        status, html = await page(client, path)
        assert status == 200, path
        assert "not available yet" in html


async def test_top_up_page_points_to_the_partner(client, db, signed_in):
    await db.execute("UPDATE partners SET supervisor_email = 'boss@reseller.test' WHERE id = $1",
                     signed_in["partner_id"])
    status, html = await page(client, "/top-up")
    assert status == 200 and "mailto:boss@reseller.test" in html


async def test_white_label_by_host(client, db):
    owner = await db.fetchval("SELECT owner_partner_id FROM portals WHERE is_default")
    await db.execute(
        """INSERT INTO portals (owner_partner_id, name, host, logo_url, primary_color, support_email)
           VALUES ($1, 'Acme Messaging', 'sms.acme.test', '/static/favicon.svg', '#ff6600', 'help@acme.test')""",
        owner,
    )
    status, html = await page(client, "/signin", headers={"Host": "sms.acme.test:8080"})
    assert status == 200
    assert "Acme Messaging" in html and "help@acme.test" in html
    assert '<img class="brand-logo" src="/static/favicon.svg"' in html
    assert "/theme.css?c=ff6600" in html
    response = await client.get("/theme.css", headers={"Host": "sms.acme.test"})
    css = await response.text()
    assert "--brand:#ff6600" in css and response.content_type == "text/css"
    # Any other host gets the default portal.
    status, html = await page(client, "/signin", headers={"Host": "unknown.test"})
    assert "Herald" in html and "Acme" not in html


async def test_users_of_another_portal_cannot_sign_in_here(client, db):
    owner = await db.fetchval("SELECT owner_partner_id FROM portals WHERE is_default")
    portal_id = await db.fetchval(
        "INSERT INTO portals (owner_partner_id, name, host) VALUES ($1, 'Other', 'other.test') RETURNING id",
        owner,
    )
    await make_client_user(db, "elsewhere@client.test", portal_id=portal_id)
    response = await post(client, "/signin", {"email": "elsewhere@client.test", "password": "correct-horse-battery"})
    assert response.status == 400
    response = await post(client, "/signin", {"email": "elsewhere@client.test", "password": "correct-horse-battery"},
                          headers={"Host": "other.test"})
    assert response.status == 303
    # Signed in on other.test; the same session is nobody on the default portal.
    assert (await page(client, "/", headers={"Host": "other.test"}))[0] == 200
    assert (await page(client, "/"))[0] == 303


async def test_language_from_accept_language_then_cookie(client):
    _status, html = await page(client, "/signin", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert '<html lang="ru"' in html
    _status, html = await page(client, "/signin", headers={"Accept-Language": "de-DE,tr;q=0.8"})
    assert '<html lang="tr"' in html
    response = await post(client, "/prefs/language", {"language": "es", "next": "/signin"})
    assert response.status == 303 and response.headers["Location"] == "/signin"
    _status, html = await page(client, "/signin", headers={"Accept-Language": "ru"})
    assert '<html lang="es"' in html


async def test_language_of_a_user_is_remembered(client, db, signed_in):
    response = await post(client, "/prefs/language", {"language": "tr", "next": "/account"})
    assert response.headers["Location"] == "/account"
    assert await db.fetchval("SELECT language FROM users WHERE id = $1", signed_in["id"]) == "tr"
    client.session.cookie_jar.clear(lambda c: c.key == "herald_lang")
    _status, html = await page(client, "/")
    assert '<html lang="tr"' in html
    # Unknown languages fall back to the portal's default.
    await post(client, "/prefs/language", {"language": "xx"})
    assert await db.fetchval("SELECT language FROM users WHERE id = $1", signed_in["id"]) == "en"


async def test_theme_for_visitors_and_users(client, db, user):
    response = await post(client, "/prefs/theme", {"theme": "dark", "next": "/signin"})
    assert response.status == 303
    _status, html = await page(client, "/signin")
    assert 'data-theme="dark"' in html
    await sign_in(client, user["email"])
    _status, html = await page(client, "/")
    assert 'data-theme="light"' in html  # the user's own choice wins once signed in
    response = await post(client, "/prefs/theme", {"theme": "dark"}, headers={"X-Requested-With": "fetch"})
    assert response.status == 200 and (await response.json()) == {"theme": "dark"}
    assert await db.fetchval("SELECT theme FROM users WHERE id = $1", user["id"]) == "dark"


async def test_prefs_refuse_missing_csrf(client, signed_in):
    response = await post(client, "/prefs/theme", {"theme": "dark"}, csrf=False)
    assert response.status == 403
    response = await post(client, "/prefs/table/api_keys", {"order": "name"}, csrf=False)
    assert response.status == 403


async def test_open_redirects_are_refused(client):
    for target in ("https://evil.test/", "//evil.test", "/\\evil.test"):
        response = await post(client, "/prefs/theme", {"theme": "dark", "next": target})
        assert response.headers["Location"] == "/"


async def test_error_pages_and_headers(client, signed_in):
    status, html = await page(client, "/no-such-page")
    assert status == 404 and "Page not found" in html
    response = await client.get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


async def test_static_files_are_versioned_and_cached(client):
    _status, html = await page(client, "/signin")
    import re

    href = re.search(r'href="(/static/app\.css\?v=[0-9a-f]+)"', html).group(1)
    response = await client.get(href)
    assert response.status == 200
    assert "immutable" in response.headers["Cache-Control"]
    js = await client.get("/static/app.js")
    assert js.status == 200


async def test_api_paths_skip_the_portal(client):
    # No session cookie, no HTML error page: the JSON API answers for itself.
    response = await client.get("/api/nothing-here", allow_redirects=False)
    assert response.status == 404
    assert "herald_session" not in response.headers.get("Set-Cookie", "")


async def test_every_portal_form_refuses_a_missing_csrf_token(app, client, signed_in):
    """Each POST route of the portal, signed in, without the token: 403 before the handler runs."""
    from portal.pages import ROUTE_TABLES

    paths = [route.path for table in ROUTE_TABLES for route in table if route.method == "POST"]
    assert len(paths) >= 15
    for path in paths:
        concrete = path.replace("{key_id:\\d+}", "1").replace("{token}", "t").replace("{table_id}", "api_keys")
        response = await post(client, concrete, {"x": "1"}, csrf=False)
        assert response.status == 403, path
    assert (await page(client, "/"))[0] == 200  # still signed in: nothing ran
