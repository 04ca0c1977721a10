"""Contacts in a real headless Chromium (Debian's), against Herald on a real port.

The three journeys of the Contacts screens: a contact with a custom field, a
CSV import through its mapping step to its result, and a contact put on the
stop list for one sender ID, after which an API message to it is refused.
Screenshots of every Contacts screen land in tests/artifacts/ (contacts-*.png).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from contacts import contacts, groups, imports, stoplist
from contacts.contacts import ContactInput
from gateway.intake import apikeys
from gateway.runtime.main import build_app
from tests.gateway.world import PASSWORD, RU_MOBILE, SENDER, make_world

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
    context.set_default_timeout(15_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.herald_errors = errors  # a test takes out the answers it asked for (a form sent back with 400)
    yield page
    await context.close()
    assert not errors, f"browser errors: {errors}"


@pytest_asyncio.fixture(loop_scope="session")
async def shop(db, pool):
    world = await make_world(pool, name="Shop")
    await db.execute("UPDATE users SET country = 'RU' WHERE id = $1", world.user_id)
    return world


async def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / f"contacts-{name}.png"), full_page=True)


async def sign_in(page, live_url: str, email: str) -> None:
    await page.goto(f"{live_url}/signin")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{live_url}/")


async def test_add_a_contact_with_a_custom_field(tab, live_url, db, shop):
    page = tab
    await groups.create(db, shop.partner_id, name="Customers")
    await sign_in(page, live_url, shop.email)
    await page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Contacts").click()
    await page.wait_for_url("**/contacts")
    await shoot(page, "empty")

    await page.get_by_role("link", name="Table settings").click()
    await page.get_by_role("link", name="Create field").first.click()
    await page.get_by_label("Field name").fill("Loyalty tier")
    await page.get_by_label("Data type").select_option("text")
    await shoot(page, "create-field")
    await page.get_by_role("button", name="Create").click()
    await page.wait_for_url("**/contacts/settings")
    assert "{loyaltytier}" in await page.inner_text(".flashes")
    await shoot(page, "fields-control")

    await page.goto(f"{live_url}/contacts/new")
    await page.get_by_label("Phone").fill("8 916 123-45-67")  # a local number, read with the user's country
    await page.get_by_label("Customers").check()
    await page.get_by_label("First name").fill("Ada")
    await page.get_by_label("Loyalty tier").fill("Gold")
    await shoot(page, "add")
    await page.get_by_role("button", name="Create").click()
    await page.wait_for_url("**/contacts")
    row = page.locator("tr", has_text="+79161234567")
    await row.wait_for()
    assert "Gold" in await row.inner_text() and "Customers" in await row.inner_text()
    contact = await contacts.for_phone(db, shop.partner_id, RU_MOBILE)
    assert contact.first_name == "Ada" and contact.fields == {"loyaltytier": "Gold"}

    # the same number again: a clear message next to the phone, nothing lost
    await page.goto(f"{live_url}/contacts/new")
    await page.get_by_label("Phone").fill("+7 916 123 45 67")
    await page.get_by_label("Customers").check()
    await page.get_by_role("button", name="Create").click()
    assert "A contact with this phone number exists." in await page.inner_text(".form")
    assert page.herald_errors == [f"400 {live_url}/contacts"]
    page.herald_errors.clear()
    await shoot(page, "add-duplicate")

    field_id = await db.fetchval(
        "SELECT id FROM contact_fields WHERE partner_id = $1 AND variable = 'loyaltytier'", shop.partner_id)
    await page.goto(f"{live_url}/contacts?cf.{field_id}=gold")  # any case
    await page.locator("tr", has_text="+79161234567").wait_for()
    await page.locator("tr", has_text="+79161234567").hover()
    await shoot(page, "list-filtered")
    await page.get_by_text("Columns", exact=True).click()
    await shoot(page, "columns")

    # Fields Control: drag the custom field to the top, hide the groups column; remembered for this user
    await page.goto(f"{live_url}/contacts/settings")
    tier = page.locator("li[data-column]", has=page.locator(f"input[name='name:cf.{field_id}']"))
    await tier.drag_to(page.locator("li[data-column]").first)
    await page.locator("li[data-column]", has_text="Groups").get_by_label("Show").uncheck()
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/contacts")
    prefs = await db.fetchval("SELECT ui_prefs->'tables'->'contacts' FROM users WHERE id = $1", shop.user_id)
    assert prefs["order"][0] == f"cf.{field_id}" and "groups" in prefs["hidden"]
    headers = [h.strip().lower() for h in await page.locator("table.data-table thead th").all_inner_texts()]
    assert headers[1] == "loyalty tier" and "groups" not in headers


async def test_import_a_csv_with_mapping_and_see_the_result(tab, live_url, db, shop):
    page = tab
    await sign_in(page, live_url, shop.email)
    await page.goto(f"{live_url}/contacts/imports")
    await page.get_by_role("link", name="Import Contacts").first.click()
    await page.wait_for_url("**/contacts/import")
    await shoot(page, "import-upload")
    csv = (b"Mobile;Name;Notes\n"
           b"+79161234501;Ada;VIP\n"
           b"8 916 123-45-02;Grace;\n"
           b"12345;Broken;bad number\n"
           b"+79161234504;Alan;=HYPERLINK(\"http://evil.test\")\n")
    await page.set_input_files("input[type=file]", files=[
        {"name": "fair.csv", "mimeType": "text/csv", "buffer": csv}])
    assert "fair.csv" in await page.inner_text("[data-file-name]")
    await page.get_by_role("button", name="Upload").click()
    await page.wait_for_url("**/mapping")
    assert await page.locator("#map-0").input_value() == "phone"      # "Mobile" recognised
    assert await page.locator("#map-1").input_value() == "first_name"  # "Name" too
    await page.locator("#map-2").select_option("comments")
    await page.get_by_label("Add new only").check()
    await shoot(page, "import-mapping")
    await page.get_by_role("button", name="Next step").click()
    await page.wait_for_url("**/group")
    await page.get_by_label("Or create a group for it").fill("Spring fair")
    await shoot(page, "import-group")
    await page.get_by_role("button", name="Import contacts").click()
    await page.wait_for_url("**/contacts/imports/*")
    await page.locator("[data-import-status]", has_text="Done").wait_for(timeout=60_000)
    counts = page.locator("[data-import-counts]")
    assert await counts.locator("[data-count=added]").inner_text() == "3"
    assert await counts.locator("[data-count=rejected]").inner_text() == "1"
    assert "Not a valid phone number" in await page.inner_text("main")
    await shoot(page, "import-result")
    job = (await imports.list_page(db, shop.partner_id))[0]
    assert (job.added, job.rejected, job.file_name) == (3, 1, "fair.csv")
    alan = await contacts.for_phone(db, shop.partner_id, "79161234504")
    assert alan.comments.startswith("=HYPERLINK")  # kept as typed; exports neutralise it
    await page.goto(f"{live_url}/contacts/imports")
    await shoot(page, "import-history")
    await page.goto(f"{live_url}/contacts/groups")
    assert "Spring fair" in await page.inner_text("main")
    await shoot(page, "groups")


async def test_stop_list_for_one_sender_refuses_an_api_message(tab, live_url, db, shop):
    page = tab
    customers = await groups.create(db, shop.partner_id, name="Customers")
    await contacts.create(db, shop.partner_id, ContactInput(RU_MOBILE, (customers.id,), first_name="Ada"),
                          user_id=shop.user_id)
    await sign_in(page, live_url, shop.email)
    await page.goto(f"{live_url}/contacts")
    row = page.locator("tr", has_text="+79161234567")
    await row.hover()
    await row.get_by_role("link", name="Move to Stop List").click()
    await page.wait_for_url("**/contacts/action/stop*")
    await page.get_by_label(SENDER, exact=True).check()
    await shoot(page, "move-to-stop-list")
    await page.get_by_role("button", name="Move to Stop List").click()
    await page.wait_for_url("**/contacts")
    assert "Stop List" in await page.inner_text(".flashes")
    assert await stoplist.senders_of(db, shop.partner_id, RU_MOBILE) == [SENDER]

    await page.get_by_role("navigation", name="Contacts").get_by_role("link", name="Stop List").click()
    await page.wait_for_url("**/contacts/stop-list")
    stop_row = page.locator("tr", has_text="+79161234567")
    assert SENDER in await stop_row.inner_text()
    await stop_row.hover()
    await shoot(page, "stop-list")

    _, key = await apikeys.create(db, partner_id=shop.partner_id, created_by=shop.user_id, name="CRM",
                                  callback_url="", ttl="30d")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{live_url}/api/send_sms", headers={"Authorization": f"Bearer {key}"}, json={
                "channels": ["SMS"], "from": SENDER, "to": [RU_MOBILE, "79161234568"], "message": "Sale!"}) as r:
            assert r.status == 200
            results = (await r.json())["results"]
    assert results[0] == f"{RU_MOBILE}: For message: {RU_MOBILE} is on the stop list of {SENDER}" or (
        results[0].startswith(f"{RU_MOBILE}: ") and "stop list" in results[0]), results
    assert "stop list" not in results[1]

    # the block lifted from the Stop List screen: the next message goes
    await page.get_by_role("link", name="Remove from Stop List").first.click()
    await page.get_by_label(SENDER, exact=True).check()
    await shoot(page, "stop-list-remove")
    await page.get_by_role("button", name="Unblock").click()
    await page.wait_for_url("**/contacts/stop-list")
    assert await stoplist.senders_of(db, shop.partner_id, RU_MOBILE) == []
