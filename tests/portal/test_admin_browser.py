"""The sender ID journey in a real Chromium: a user asks, the system owner approves, the user sees it.

Also saves screenshots of the Admin Panel, light and dark, in tests/artifacts/admin-*.png.
"""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.portal.admin_world import OUTSIDE_EMAIL, build_world
from tests.portal.conftest import PASSWORD
from tests.portal.test_browser import CHROMIUM, _shoot, browser, live_url, tab  # noqa: F401  (shared fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


async def _sign_in(page, base: str, email: str, password: str) -> None:
    await page.context.clear_cookies()
    await page.goto(f"{base}/signin")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/")


async def test_sender_id_requested_approved_and_enabled(tab, live_url, db):  # noqa: F811
    world = await build_world(db)
    page = tab

    # 1. the end user asks for a sender ID, with a supporting document
    await _sign_in(page, live_url, OUTSIDE_EMAIL, PASSWORD)
    await page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Sender IDs").click()
    await page.wait_for_url("**/sender-ids")
    await page.get_by_role("textbox", name="Sender ID").fill("Orbit")
    await page.get_by_role("textbox", name="Comment").fill("Order notifications")
    await page.get_by_label("Supporting document").set_input_files(
        files=[{"name": "letter.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 letter"}])
    await page.get_by_role("button", name="Send request").click()
    await page.wait_for_url("**/sender-ids")
    row = page.locator("tr", has_text="Orbit")
    assert "Waiting for approval" in await row.inner_text()

    # 2. the system owner approves it in the Admin Panel
    await _sign_in(page, live_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    await page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Admin Panel").click()
    await page.wait_for_url("**/admin/partners")
    await page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Sender IDs").click()
    await page.get_by_role("link", name="Orbit").click()
    assert "letter.pdf" in await page.inner_text("main")
    await page.get_by_label("Valid until").fill("2099-12-31")
    await page.get_by_role("textbox", name="Comment").fill("Brand checked")
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url("**/admin/sender-ids")
    assert "Orbit is approved and enabled." in await page.inner_text("main")

    # 3. the user sees it enabled
    await _sign_in(page, live_url, OUTSIDE_EMAIL, PASSWORD)
    await page.goto(f"{live_url}/sender-ids")
    row = page.locator("tr", has_text="Orbit")
    assert "Enabled" in await row.inner_text()
    for theme in ("light", "dark"):
        await db.execute("UPDATE users SET theme = $2 WHERE id = $1", world.outside_user, theme)
        await page.reload()
        await _shoot(page, "sender-ids-user", theme)

    # Screenshots of the Admin Panel in both themes
    await db.execute("UPDATE partners SET balance = 250 WHERE id = $1", world.outside_id)
    await db.execute("""INSERT INTO transactions (partner_id, counterparty_id, type, amount, currency, description)
                        VALUES ($1, 1, 'topup', 250, 'EUR', 'opening balance')""", world.outside_id)
    await _sign_in(page, live_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    admin_id = await db.fetchval("SELECT id FROM users WHERE email = $1", ADMIN_EMAIL)
    screens = [
        ("partners", "/admin/partners"), ("partner", f"/admin/partners/{world.outside_id}"),
        ("partner-new", "/admin/partners/new"), ("users", "/admin/users"),
        ("sender-ids", "/admin/sender-ids?view=all"), ("sender-id", f"/admin/sender-ids/{world.outside_sender}"),
        ("portals", "/admin/portals"), ("portal-edit", f"/admin/portals/{world.portal_id}"),
        ("vendors", "/admin/vendors"), ("vendor", f"/admin/vendors/{world.vendor_id}"),
        ("reference-book", "/admin/reference-book"), ("plans", "/admin/plans"),
        ("plan", f"/admin/plans/{world.owner_plan}"), ("packs", "/admin/packs"),
        ("smpp-accounts", "/admin/smpp-accounts"),
    ]
    for theme in ("light", "dark"):
        await db.execute("UPDATE users SET theme = $2 WHERE id = $1", admin_id, theme)
        for name, path in screens:
            await page.goto(f"{live_url}{path}")
            assert await page.evaluate("document.documentElement.dataset.theme") == theme
            await _shoot(page, f"admin-{name}", theme)
