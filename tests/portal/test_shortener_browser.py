"""The URL Shortener in a real Chromium: Short Domains tab, statistics, archive, Archive tab.

Screenshots (light and dark) land in tests/artifacts/shortener-*.png.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.runtime.main import build_app
from shortener import clicks, links
from shortener.web import SHORTENER
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.portal.test_browser import CHROMIUM, _shoot, browser, tab  # noqa: F401  (shared fixtures)
from tests.shortener.test_pure import ANDROID, IPHONE
from tests.shortener.world import ALPHA_EMAIL, PASSWORD, build

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"


@pytest_asyncio.fixture(loop_scope="session")
async def live(portal_settings, db):
    """The world first, then Herald's web app on a real port (so it knows the short domains)."""
    world = await build(db)
    app = build_app(portal_settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", app, world
    await runner.cleanup()


async def _sign_in(page, base: str, email: str, password: str) -> None:
    await page.context.clear_cookies()
    await page.goto(f"{base}/signin")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/")


async def test_short_domains_and_archive_tabs(tab, live, db):  # noqa: F811
    base, app, world = live
    page = tab
    spring = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id, campaign_id=41,
                                     name="Spring sale", original_url="https://shop.example.com/spring?utm=sms")
    winter = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id, campaign_id=40,
                                     name="Winter clearance", original_url="https://shop.example.com/winter")
    await db.execute("UPDATE short_links SET created_at = now() - interval '20 days' WHERE id = $1", winter.id)
    # real clicks through Herald's port, then a month of history for the chart
    async with aiohttp.ClientSession() as http:
        for agent in (IPHONE, IPHONE, ANDROID, FIREFOX, "WhatsApp/2.23.20.0 A"):
            async with http.get(f"{base}/{spring.code}", headers={"Host": "go.herald.test", "User-Agent": agent},
                                allow_redirects=False) as response:
                assert response.status == 302
    await app[SHORTENER].writer.flush()
    code_id = await db.fetchval("SELECT id FROM short_codes WHERE link_id = $1", winter.id)
    now = datetime.now(UTC)
    history = [clicks.Click(code_id, now - timedelta(days=day, hours=hour), False, os_name, browser_name, "Other")
               for day in range(20) for hour in range(day % 5 + 1)
               for os_name, browser_name in ([("Android", "Chrome Mobile")] if hour % 3 else [("iOS", "Mobile Safari")])]
    await clicks.write_batch(db, history)

    await _sign_in(page, base, ALPHA_EMAIL, PASSWORD)
    await page.get_by_role("navigation", name="Main menu").get_by_role("link", name="URL Shortener").click()
    await page.wait_for_url("**/url-shortener")
    main = page.locator("main")
    assert "go.herald.test" in await main.inner_text()
    assert "Spring sale" in await main.inner_text() and "Winter clearance" in await main.inner_text()
    people = len(history) + 4
    assert (await page.locator("[data-clicks]").inner_text()).replace(",", "") == str(people)
    assert await page.locator("[data-bots]").inner_text() == "1"
    for theme in ("light", "dark"):
        await db.execute("UPDATE users SET theme = $2 WHERE id = $1", world.alpha_user, theme)
        await page.reload()
        await _shoot(page, "shortener-domains", theme)

    # one campaign, then the last week of it
    await page.get_by_role("link", name="Spring sale").click()
    await page.wait_for_url(f"**/url-shortener?sel=l{spring.id}")
    assert await page.locator("[data-clicks]").inner_text() == "4"
    stats = page.locator(".stats-card")
    assert "iOS" in await stats.inner_text() and "Firefox" in await stats.inner_text()
    await page.get_by_role("link", name="Winter clearance").click()
    await page.get_by_role("navigation", name="Period").get_by_role("link", name="Week").click()
    await page.wait_for_url("**period=week")
    week = sum(1 for c in history if c.clicked_at >= (now - timedelta(days=6)).replace(hour=0, minute=0, second=0,
                                                                                        microsecond=0))
    assert (await page.locator("[data-clicks]").inner_text()).replace(",", "") == str(week)
    await _shoot(page, "shortener-campaign-week", "dark")

    # the row's menu: move the spring campaign's link to the archive
    row = page.locator("tr.tree-link", has_text="Spring sale")
    await row.locator("summary").click()
    await row.get_by_role("button", name="Move to the archive").click()
    await page.wait_for_url("**/url-shortener")
    assert "moved to the archive" in await page.locator(".flashes").inner_text()
    async with aiohttp.ClientSession() as http, http.get(
            f"{base}/{spring.code}", headers={"Host": "go.herald.test", "Accept-Language": "en"}) as response:
        assert response.status == 404
        assert "can't find that page" in await response.text()

    await page.get_by_role("link", name="Archive").click()
    await page.wait_for_url("**/url-shortener/archive")
    assert "Spring sale" in await main.inner_text() and "Winter clearance" not in await main.inner_text()
    assert "deleted 30 days after" in await main.inner_text()
    for theme in ("light", "dark"):
        await db.execute("UPDATE users SET theme = $2 WHERE id = $1", world.alpha_user, theme)
        await page.reload()
        await _shoot(page, "shortener-archive", theme)
    await page.goto(f"{base}/url-shortener/links/{spring.id}")
    await _shoot(page, "shortener-link", "dark")

    # the 404 page a visitor sees (fetched with the short domain's Host, shown as served)
    async with aiohttp.ClientSession() as http, http.get(
            f"{base}/{spring.code}", headers={"Host": "go.herald.test", "Accept-Language": "es"}) as response:
        not_found = await response.text()
    await page.goto("about:blank")  # out of the portal's page, whose CSP would forbid the inline style
    await page.set_content(not_found)
    assert "Lo sentimos" in await page.inner_text("h1")
    await _shoot(page, "shortener-404", "es")

    await _sign_in(page, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    for name, path in (("admin-short-domains", "/admin/short-domains"),
                       ("admin-short-domain", f"/admin/short-domains/{world.go.id}")):
        await page.goto(f"{base}{path}")
        assert "go.herald.test" in await page.inner_text("main")
        await _shoot(page, name, "light")
