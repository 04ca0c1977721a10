"""The main journeys in a real headless Chromium (Debian's), against Herald on a real port.

Screenshots of the main pages, light and dark, land in tests/artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.intake import apikeys
from gateway.runtime.main import build_app
from portal import captcha
from tests.portal.conftest import link_in, make_client_user, text_of

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]


@pytest_asyncio.fixture(loop_scope="session")
async def live_url(portal_settings):
    """Herald's web app served on 127.0.0.1 on an ephemeral port."""
    runner = web.AppRunner(build_app(portal_settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def tab(browser):
    context = await browser.new_context(viewport={"width": 1360, "height": 860}, locale="en-US")
    context.set_default_timeout(10_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield page
    await context.close()
    assert not errors, f"browser errors: {errors}"


async def test_sign_up_confirm_2fa_and_api_key(tab, live_url, db, redis, mailbox):
    await db.execute("UPDATE portals SET allow_signup = true, require_2fa = true WHERE is_default")
    page = tab

    await page.goto(f"{live_url}/signin")
    await page.get_by_role("link", name="Create an account").click()
    await page.wait_for_url("**/signup")
    await page.get_by_label("First name").fill("Katherine")
    await page.get_by_label("Last name").fill("Johnson")
    await page.get_by_label("Company name").fill("Orbit Ltd")
    await page.get_by_label("E-mail").fill("katherine@orbit.test")
    await page.get_by_label("Password", exact=True).fill("trajectory-1962")
    await page.get_by_label("Confirm password").fill("trajectory-1962")
    challenge = await page.locator("input[name=captcha_id]").input_value()
    await page.get_by_label("Characters in the picture").fill(await captcha.answer_for_tests(redis, challenge))
    await page.locator("input[name=accept_terms]").check()
    await page.get_by_role("button", name="Sign up").click()
    await page.wait_for_url("**/signup/sent")
    assert "katherine@orbit.test" in await page.inner_text("main")

    confirm = link_in(mailbox.last_to("katherine@orbit.test"), "/signup/confirm/")
    await page.goto(confirm)
    await page.wait_for_url("**/signin")
    assert "confirmed" in await page.inner_text(".flashes")

    secret_mail = mailbox.last_to("katherine@orbit.test")
    assert "authenticator" in text_of(secret_mail)
    secret = re.search(r"^ {4}([A-Z2-7 ]{20,})\s*$", text_of(secret_mail), re.M).group(1).replace(" ", "")

    await page.get_by_label("E-mail").fill("katherine@orbit.test")
    await page.get_by_label("Password").fill("trajectory-1962")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/signin/verify")
    await page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(f"{live_url}/")
    assert "Welcome, Katherine" in await page.inner_text("h1")

    await page.get_by_role("navigation", name="Main menu").get_by_role("link", name="API Connections").click()
    await page.wait_for_url("**/api-connections/keys")
    await page.get_by_role("link", name="Add key").click()
    await page.get_by_label("Name").fill("Orbit CRM")
    await page.get_by_label("Callback URL").fill("https://crm.orbit.test/herald")
    await page.get_by_label("Expires after").select_option("7d")
    await page.get_by_role("button", name="Create").click()
    await page.wait_for_url("**/api-connections/keys")

    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    await _shoot(page, "api-key-created", "light")
    key = (await page.inner_text("#new-key-value")).strip()
    assert key.startswith(apikeys.KEY_PREFIX)
    found = await apikeys.verify(db, key)
    assert found.name == "Orbit CRM"
    assert (await page.inner_text("#new-signing-secret")).strip().startswith("hrs_")
    await page.get_by_role("button", name="Copy").first.click()  # the key's; the secret's follows
    await page.get_by_role("link", name="Close").click()
    assert await page.get_by_role("dialog").count() == 0

    await page.reload()
    row = page.locator("tr", has_text="Orbit CRM")
    await row.wait_for()
    assert await page.get_by_role("dialog").count() == 0
    assert key not in await page.content()
    assert "Never used" in await row.inner_text() or "Last used" in await row.inner_text()


async def _shoot(page, name: str, theme: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / f"{name}-{theme}.png"), full_page=True)


async def test_main_pages_in_both_themes(tab, live_url, db):
    page = tab
    await db.execute("UPDATE portals SET allow_signup = true, support_email = 'help@herald.test' WHERE is_default")
    partner_id, user_id = await make_client_user(db, "ada@client.test", supervisor_email="manager@reseller.test")
    await db.execute("UPDATE partners SET balance = 1234.5 WHERE id = $1", partner_id)
    for index, ttl in enumerate(("30d", "never", "1d", "1y")):
        await apikeys.create(db, partner_id=partner_id, created_by=user_id, name=f"Integration {index + 1}",
                             callback_url="https://example.test/hook" if index % 2 else "", ttl=ttl)
    await db.execute("UPDATE api_keys SET expires_at = now() - interval '1 day' WHERE name = 'Integration 3'")
    await db.execute("UPDATE api_keys SET last_used_at = now() - interval '50 days' WHERE name = 'Integration 1'")

    for theme in ("light", "dark"):
        await page.context.clear_cookies()
        await page.goto(f"{live_url}/signin")
        if theme == "dark":
            await page.get_by_role("button", name="Dark theme").click()
            await page.wait_for_selector("html[data-theme='dark']", state="attached")
        await _shoot(page, "signin", theme)
        await page.goto(f"{live_url}/signup")
        await _shoot(page, "signup", theme)
        await page.goto(f"{live_url}/signin")
        await page.get_by_label("E-mail").fill("ada@client.test")
        await page.get_by_label("Password").fill("correct-horse-battery")
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{live_url}/")
        await db.execute("UPDATE users SET theme = $2 WHERE id = $1", user_id, theme)
        await page.reload()
        assert await page.evaluate("document.documentElement.dataset.theme") == theme
        await _shoot(page, "dashboard", theme)
        await page.goto(f"{live_url}/api-connections/keys")
        await page.locator("tr", has_text="Integration 2").hover()
        await _shoot(page, "api-keys", theme)
        await page.get_by_text("Columns", exact=True).click()
        await _shoot(page, "api-keys-columns", theme)
        await page.goto(f"{live_url}/api-connections/methods")
        await _shoot(page, "api-methods", theme)
        await page.goto(f"{live_url}/account/security")
        await page.get_by_role("button", name="Set up two-factor authentication").click()
        await page.locator(".qr svg").wait_for()
        await _shoot(page, "account-security", theme)
        await page.goto(f"{live_url}/account")
        await page.locator("summary", has_text="Ada").click()
        await _shoot(page, "account-menu", theme)
        await page.goto(f"{live_url}/campaigns")
        await _shoot(page, "unavailable", theme)
        await db.execute("UPDATE users SET language = 'ru' WHERE id = $1", user_id)
        await page.goto(f"{live_url}/")
        assert "Пополнить" in await page.inner_text("main")
        await _shoot(page, "dashboard-ru", theme)
        await page.goto(f"{live_url}/api-connections/keys")
        await _shoot(page, "api-keys-ru", theme)
        await db.execute("UPDATE users SET language = 'en' WHERE id = $1", user_id)
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto(f"{live_url}/api-connections/keys")
        await _shoot(page, "mobile-api-keys", theme)
        await page.set_viewport_size({"width": 1360, "height": 860})
        await page.locator("summary", has_text="Ada").click()
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url("**/signin")


async def test_theme_toggle_in_user_menu_is_remembered(tab, live_url, db):
    page = tab
    _partner_id, user_id = await make_client_user(db, "ada@client.test")
    await page.goto(f"{live_url}/signin")
    await page.get_by_label("E-mail").fill("ada@client.test")
    await page.get_by_label("Password").fill("correct-horse-battery")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{live_url}/")
    await page.locator("summary", has_text="Ada").click()
    await page.get_by_role("button", name="Dark theme").click()
    await page.wait_for_selector("html[data-theme='dark']", state="attached")
    assert await db.fetchval("SELECT theme FROM users WHERE id = $1", user_id) == "dark"
    await page.reload()
    assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
    # The language switch in the same menu: the page comes back in Spanish.
    await page.locator("summary", has_text="Ada").click()
    await page.get_by_role("button", name="ES").click()
    await page.wait_for_load_state()
    assert await page.get_attribute("html", "lang") == "es"
    assert await db.fetchval("SELECT language FROM users WHERE id = $1", user_id) == "es"
