"""The URL Shortener in the Campaign Portal and the short domains of the Admin Panel, over HTTP.

A link made through the campaigns' hook is followed by a real HTTP client;
its click shows in the statistics with its OS and browser; archiving it makes
it answer 404; other tenants get 404 on every route; whatever tenants typed
comes back escaped; CSV and XLSX reports neutralise formulas.
"""

from __future__ import annotations

import io
import re

import aiohttp
import pytest
import pytest_asyncio
from openpyxl import load_workbook

from shortener import domains, links
from shortener.web import SHORTENER
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.portal.conftest import page, post, sign_in, token_for
from tests.shortener.test_pure import ANDROID, IPHONE
from tests.shortener.world import ALPHA_EMAIL, BETA_EMAIL, build

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def world(db):
    return await build(db)


@pytest_asyncio.fixture(loop_scope="session")
async def started(app, world, make_client):
    """The app started after the world exists (its short domains are known from the start)."""
    return await make_client(app)


async def _click(client, link_url: str, agent: str) -> int:
    host, code = link_url.removeprefix("https://").split("/")
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{client.server.port}/{code}", headers={"Host": host, "User-Agent": agent},
            allow_redirects=False) as response:
        return response.status


async def test_menu_and_section_only_for_users_with_a_short_domain(started, db, world):
    client = started
    await sign_in(client, BETA_EMAIL)
    _, html = await page(client, "/")
    assert 'href="/url-shortener"' in html  # lnk.herald.test is granted to Beta
    await db.execute("DELETE FROM short_domain_grants WHERE domain_id = $1", world.lnk.id)
    _, html = await page(client, "/")
    assert 'href="/url-shortener"' not in html
    for path in ("/url-shortener", "/url-shortener/archive"):
        status, html = await page(client, path)
        assert status == 404 and "Page not found" in html, path
    # a partner that has links keeps their statistics even without a domain now
    await db.execute("INSERT INTO short_links (domain_id, partner_id, original_url) VALUES ($1, $2, 'https://x.test/')",
                     world.lnk.id, world.beta)
    _, html = await page(client, "/")
    assert 'href="/url-shortener"' in html


async def test_a_click_reaches_the_statistics(started, app, db, world):
    client = started
    link = await links.create_link(db, partner_id=world.alpha, user_id=world.alpha_user, domain_id=world.go.id,
                                   original_url="https://shop.example.com/spring", campaign_id=31,
                                   name="Spring sale")
    assert await _click(client, link.url, IPHONE) == 302
    assert await _click(client, link.url, IPHONE) == 302
    assert await _click(client, link.url, ANDROID) == 302
    assert await _click(client, link.url, "facebookexternalhit/1.1") == 302
    await app[SHORTENER].writer.flush()
    await sign_in(client, ALPHA_EMAIL)
    status, html = await page(client, "/url-shortener")
    assert status == 200
    assert "go.herald.test" in html and "Spring sale" in html
    # the first domain is selected: its figures (people, then bots apart), OS and browser
    assert re.search(r"data-clicks>3<", html) and re.search(r"data-bots>1<", html)
    assert "iOS" in html and "Android" in html and "Mobile Safari" in html and "Chrome Mobile" in html
    assert "<svg" in html and 'class="bar"' in html
    status, html = await page(client, f"/url-shortener?sel=l{link.id}&period=day")
    assert status == 200 and "https://shop.example.com/spring" in html and re.search(r"data-clicks>3<", html)
    assert link.url in html
    for period in ("all", "week", "month", "year", "nonsense"):
        status, _ = await page(client, f"/url-shortener?sel=l{link.id}&period={period}")
        assert status == 200, period
    status, html = await page(client, "/url-shortener?q=spring")
    assert "Spring sale" in html
    status, html = await page(client, "/url-shortener?q=autumn")
    assert "Nothing matches this filter." in html
    status, html = await page(client, f"/url-shortener/links/{link.id}")
    assert status == 200 and "Spring sale" in html and "#31" in html


async def test_archive_makes_the_link_answer_404(started, app, db, world):
    client = started
    link = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://shop.example.com/old", campaign_id=32, name="Old offer")
    assert await _click(client, link.url, IPHONE) == 302
    await sign_in(client, ALPHA_EMAIL)
    response = await post(client, f"/url-shortener/links/{link.id}/archive", {})
    assert response.status == 303
    _, html = await page(client, "/url-shortener")
    assert "Old offer moved to the archive." in html  # the flash; the tree no longer lists it
    assert html.count("Old offer") == 1
    assert await _click(client, link.url, IPHONE) == 404
    status, html = await page(client, "/url-shortener/archive")
    assert status == 200 and "Old offer" in html and "deleted 30 days after" in html
    await app[SHORTENER].writer.flush()
    status, html = await page(client, f"/url-shortener/archive?sel=l{link.id}")
    assert status == 200 and re.search(r"data-clicks>1<", html)  # the click before it was archived
    # the whole domain at once
    other = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                    original_url="https://shop.example.com/b")
    response = await post(client, f"/url-shortener/domains/{world.go.id}/archive", {})
    assert response.status == 303
    assert await _click(client, other.url, IPHONE) == 404


async def test_other_tenants_get_404_on_every_route(started, db, world):
    client = started
    beta_link = await links.create_link(db, partner_id=world.beta, domain_id=world.lnk.id,
                                        original_url="https://beta.example/", name="Beta secret")
    await sign_in(client, ALPHA_EMAIL)
    token = await token_for(client, "/url-shortener")
    for path in (f"/url-shortener/links/{beta_link.id}", f"/url-shortener/links/{beta_link.id}/report.csv",
                 f"/url-shortener/links/{beta_link.id}/report.xlsx", f"/url-shortener?sel=l{beta_link.id}",
                 f"/url-shortener/archive?sel=l{beta_link.id}", f"/url-shortener?sel=d{world.lnk.id}",
                 f"/url-shortener/domains/{world.lnk.id}/report.csv", f"/url-shortener/domains/{world.lnk.id}/report.xlsx",
                 "/url-shortener/links/99999999999999999999", "/url-shortener/links/-1",
                 "/url-shortener?sel=l99999999999999999999", "/url-shortener?sel=x1", "/url-shortener?sel=d%00"):
        status, html = await page(client, path)
        assert status == 404, path
        assert "Beta secret" not in html
    for path in (f"/url-shortener/links/{beta_link.id}/archive", f"/url-shortener/domains/{world.lnk.id}/archive",
                 "/url-shortener/links/99999999999999999999/archive"):
        response = await post(client, path, {}, token=token)
        assert response.status == 404, path
    assert await db.fetchval("SELECT archived_at FROM short_links WHERE id = $1", beta_link.id) is None
    # and nothing without the CSRF token
    own = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id, original_url="https://a.example/")
    response = await post(client, f"/url-shortener/links/{own.id}/archive", {}, csrf=False)
    assert response.status == 403


async def test_hostile_text_is_escaped_and_reports_neutralise_formulas(started, app, db, world):
    client = started
    link = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://shop.example.com/?q=<script>",
                                   name='=HYPERLINK("http://evil.test","x")<script>alert(1)</script>')
    assert await _click(client, link.url, "@SUM(1+1)<img src=x>") == 302
    await app[SHORTENER].writer.flush()
    await sign_in(client, ALPHA_EMAIL)
    _, html = await page(client, f"/url-shortener?sel=l{link.id}")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    _, html = await page(client, f"/url-shortener/links/{link.id}")
    assert "<script>alert(1)" not in html
    response = await client.get(f"/url-shortener/links/{link.id}/report.csv")
    assert response.status == 200 and response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = (await response.read()).decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("Time (UTC),Short link,Campaign")
    assert len(lines) == 2
    assert "'=HYPERLINK" in lines[1] and "'@SUM(1+1)" in lines[1] and link.url in lines[1]
    response = await client.get(f"/url-shortener/domains/{world.go.id}/report.xlsx")
    assert response.status == 200
    sheet = load_workbook(io.BytesIO(await response.read())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Time (UTC)" and len(rows) == 2
    assert rows[1][2].startswith("'=HYPERLINK") and rows[1][13].startswith("'@SUM")
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


async def test_the_section_speaks_the_users_language(started, db, world):
    client = started
    await sign_in(client, ALPHA_EMAIL)
    expected = {"en": "Short Domains", "es": "Dominios cortos", "ru": "Короткие домены", "tr": "Kısa Alan Adları"}
    for language, title in expected.items():
        await db.execute("UPDATE users SET language = $2 WHERE id = $1", world.alpha_user, language)
        _, html = await page(client, "/url-shortener")
        assert title in html, language
        _, html = await page(client, "/url-shortener/archive")
        assert {"en": "The archive is empty.", "es": "El archivo está vacío.", "ru": "Архив пуст.",
                "tr": "Arşiv boş."}[language] in html


async def test_owner_manages_short_domains(started, app, db, world):
    client = started
    await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    status, html = await page(client, "/admin/short-domains")
    assert status == 200 and "go.herald.test" in html and 'href="/admin/short-domains"' in html
    response = await post(client, "/admin/short-domains/new", {"host": "https://bad.test/x", "enabled": "1"})
    assert response.status == 400
    assert "Enter a host name only" in await response.text()
    response = await post(client, "/admin/short-domains/new", {"host": "go.herald.test", "enabled": "1"})
    assert response.status == 400 and "exists already" in await response.text()
    response = await post(client, "/admin/short-domains/new", {"host": "Tap.Herald.test", "enabled": "1"})
    assert response.status == 303
    domain_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert app[SHORTENER].resolver.domain("tap.herald.test") is not None  # known at once, no restart
    # grants: a user by e-mail, a partner, a portal; bad ones answered next to the field
    response = await post(client, f"/admin/short-domains/{domain_id}/grants/user", {"target": "nobody@x.test"})
    assert response.status == 400 and "No user has this e-mail address." in await response.text()
    response = await post(client, f"/admin/short-domains/{domain_id}/grants/partner", {"target": "999999"})
    assert response.status == 400 and "Choose one of the options." in await response.text()
    response = await post(client, f"/admin/short-domains/{domain_id}/grants/user", {"target": BETA_EMAIL})
    assert response.status == 303
    response = await post(client, f"/admin/short-domains/{domain_id}/grants/partner", {"target": str(world.alpha)})
    assert response.status == 303
    _, html = await page(client, f"/admin/short-domains/{domain_id}")
    assert BETA_EMAIL in html and "Alpha" in html
    assert {d.host for d in await domains.usable_domains(db, world.beta_user)} >= {"tap.herald.test"}
    grant = await db.fetchval("SELECT id FROM short_domain_grants WHERE domain_id = $1 AND user_id IS NOT NULL",
                              domain_id)
    response = await post(client, f"/admin/short-domains/{domain_id}/grants/{grant}/remove", {})
    assert response.status == 303
    assert "tap.herald.test" not in {d.host for d in await domains.usable_domains(db, world.beta_user)}
    # switched off: its links answer 404 at once
    link = await links.create_link(db, partner_id=world.alpha, domain_id=domain_id, original_url="https://a.example/")
    assert await _click(client, link.url, IPHONE) == 302
    response = await post(client, f"/admin/short-domains/{domain_id}/disable", {})
    assert response.status == 303
    assert await _click(client, link.url, IPHONE) == 404
    # a domain with links is not deleted; one without is
    response = await post(client, f"/admin/short-domains/{domain_id}/delete", {})
    assert response.status == 303
    _, html = await page(client, f"/admin/short-domains/{domain_id}")
    assert "switch it off instead" in html
    response = await post(client, f"/admin/short-domains/{world.off.id}/delete", {})
    assert response.status == 303 and response.headers["Location"] == "/admin/short-domains"
    assert await db.fetchval("SELECT count(*) FROM short_domains WHERE id = $1", world.off.id) == 0
    # hostile values come back escaped in the panel
    await db.execute("UPDATE partners SET name = '<img src=x onerror=alert(1)>' WHERE id = $1", world.alpha)
    _, html = await page(client, f"/admin/short-domains/{domain_id}")
    assert "<img src=x" not in html and "&lt;img src=x" in html


async def test_short_domains_are_the_owners_alone(started, db, world):
    client = started
    from accounts import partners, users
    from accounts.partners import NewPartner

    reseller = await partners.create_partner(db, world.owner, world.owner.partner_id, NewPartner("reseller", "Resale"))
    await users.create_user(db, world.owner, reseller.id, users.NewUser("reseller@short.test", "correct-horse-battery"))
    paths = ["/admin/short-domains", "/admin/short-domains/new", f"/admin/short-domains/{world.go.id}"]
    posts = [f"/admin/short-domains/{world.go.id}/disable", f"/admin/short-domains/{world.go.id}/grants/portal",
             f"/admin/short-domains/{world.go.id}/delete", "/admin/short-domains/new"]
    for email, expected in ((ALPHA_EMAIL, 403), ("reseller@short.test", 403)):
        await sign_in(client, email)
        for path in paths:
            status, _ = await page(client, path)
            assert status == expected, (email, path)
        token = await token_for(client, "/account")
        for path in posts:
            response = await post(client, path, {"host": "x.test", "target": "1"}, token=token)
            assert response.status == expected, (email, path)
    client.session.cookie_jar.clear()
    for path in paths:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/signin"), path
    await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    for path in ("/admin/short-domains/99999999999999999999", f"/admin/short-domains/{2**62}"):
        status, _ = await page(client, path)
        assert status == 404, path
    assert (await db.fetchval("SELECT enabled FROM short_domains WHERE id = $1", world.go.id)) is True
