"""Admin Panel, Message routes: list and filters, create/edit/delete, errors, test box, access.

Over HTTP, plus one journey in a real Chromium (screenshots in tests/artifacts/admin-route*.png).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from billing import vendors
from gateway.accept import routing
from gateway.accept.routing import RuleKey
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.portal.admin_world import INSIDE_EMAIL, RESELLER_EMAIL, build_world
from tests.portal.conftest import page, post, sign_in, token_for
from tests.portal.test_browser import CHROMIUM, _shoot, browser, live_url, tab  # noqa: F401  (shared fixtures)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def world(db):
    """The admin world plus vendors: Carrier and Backup (SMS), Viberco (Viber), Asleep (SMS, disabled)."""
    w = await build_world(db)
    w.backup = (await vendors.create_vendor(db, w.owner, vendors.NewVendor(
        "Backup", smpp_host="127.0.0.1", smpp_port=2776, system_id="herald"))).id
    w.viber = (await vendors.create_vendor(db, w.owner, vendors.NewVendor(
        "Viberco", channel="viber", protocol="http", http_base_url="http://127.0.0.1:9/"))).id
    w.asleep = (await vendors.create_vendor(db, w.owner, vendors.NewVendor(
        "Asleep", smpp_host="127.0.0.1", smpp_port=2777, system_id="herald", enabled=False))).id
    return w


@pytest_asyncio.fixture(loop_scope="session")
async def owner(client, world):
    await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return client


async def stored(db) -> list[tuple]:
    rows = await db.fetch("SELECT channel, mccmnc, prefix, vendor_id, priority, enabled FROM routes"
                          " ORDER BY channel, mccmnc NULLS FIRST, prefix NULLS FIRST, priority")
    return [tuple(r) for r in rows]


def field_error(html: str, name: str) -> str | None:
    """The text of the error shown next to field ``name``, or None."""
    match = re.search(rf'<p class="field-error" id="{re.escape(name)}-error">([^<]*)</p>', html)
    return match.group(1) if match else None


def route_form(**values) -> dict:
    return {"channel": "sms", "mccmnc": "", "prefix": "", "vendors.0": "", "vendors.1": "", "vendors.2": "",
            "enabled": "1", **values}


async def test_owner_creates_edits_and_deletes_a_route(owner, world, db):
    status, html = await page(owner, "/admin/routes")
    assert status == 200
    assert 'href="/admin/routes"' in html and "No routes yet" in html
    status, html = await page(owner, "/admin/routes/new")
    assert status == 200
    assert 'name="vendors.0"' in html and 'name="vendors.2"' in html and 'name="vendors.3"' not in html
    assert "Backup · SMS" in html and "Viberco · VIBER" in html and "Asleep · SMS · Disabled" in html

    # a prefix route: Backup first, Carrier as fallback (an empty place in between is skipped)
    response = await post(owner, "/admin/routes/new", route_form(
        prefix="+7916", **{"vendors.0": str(world.backup), "vendors.2": str(world.vendor_id)}))
    assert (response.status, response.headers["Location"]) == (303, "/admin/routes")
    assert await stored(db) == [("sms", None, "7916", world.backup, 10, True),
                                ("sms", None, "7916", world.vendor_id, 20, True)]
    _, html = await page(owner, "/admin/routes")
    assert "Route Number prefix 7916 created." in html
    assert "Backup → Carrier" in html and 'href="/admin/routes/sms-prefix-7916"' in html

    # the edit form shows the order; saving moves the route to a network and swaps the order
    status, html = await page(owner, "/admin/routes/sms-prefix-7916")
    assert status == 200 and 'value="7916"' in html
    assert re.search(rf'name="vendors.0".*?<option value="{world.backup}" selected', html, re.S)
    assert re.search(rf'name="vendors.1".*?<option value="{world.vendor_id}" selected', html, re.S)
    response = await post(owner, "/admin/routes/sms-prefix-7916", route_form(
        mccmnc="25001", enabled="", **{"vendors.0": str(world.vendor_id), "vendors.1": str(world.backup)}))
    assert (response.status, response.headers["Location"]) == (303, "/admin/routes")
    assert await stored(db) == [("sms", "25001", None, world.vendor_id, 10, False),
                                ("sms", "25001", None, world.backup, 20, False)]
    _, html = await page(owner, "/admin/routes")
    assert "Route Network 25001 (RU) saved." in html and "Carrier → Backup" in html and "Disabled" in html
    assert (await page(owner, "/admin/routes/sms-prefix-7916"))[0] == 404

    # delete
    token = await token_for(owner, "/admin/routes")
    response = await post(owner, "/admin/routes/sms-mccmnc-25001/delete", {}, token=token)
    assert (response.status, response.headers["Location"]) == (303, "/admin/routes")
    assert await stored(db) == []
    _, html = await page(owner, "/admin/routes")
    assert "Route Network 25001 (RU) deleted." in html
    response = await post(owner, "/admin/routes/sms-mccmnc-25001/delete", {}, token=token)
    assert response.status == 404


async def test_each_bad_input_is_shown_next_to_its_field(owner, world, db):
    await routing.save_rule(db, world.owner, RuleKey("sms", prefix="44"), [world.vendor_id])
    carrier, viber = str(world.vendor_id), str(world.viber)
    token = await token_for(owner, "/admin/routes/new")
    cases = [
        (route_form(prefix="79a", **{"vendors.0": carrier}), "prefix", "a prefix is 1 to 15 digits"),
        (route_form(mccmnc="2500", **{"vendors.0": carrier}), "mccmnc", "an MCCMNC is 3 (country), 5 or 6 digits"),
        (route_form(mccmnc="250", prefix="7", **{"vendors.0": carrier}), "prefix",
         "a route matches a prefix or a network, not both"),
        (route_form(channel="fax", **{"vendors.0": carrier}), "channel", "Choose one of the options."),
        (route_form(prefix="7"), "vendors.0", "This field is required."),
        (route_form(prefix="7", **{"vendors.0": "999999"}), "vendors.0", "Choose one of the options."),
        # the refused place is named even with an empty place before it
        (route_form(prefix="7", **{"vendors.0": carrier, "vendors.2": viber}), "vendors.2",
         "this vendor carries another channel"),
        (route_form(prefix="7", **{"vendors.0": carrier, "vendors.1": carrier}), "vendors.1",
         "a vendor appears only once in the order"),
        (route_form(prefix="44", **{"vendors.0": carrier}), "prefix",
         "a route for this channel and match exists; edit that one"),
        (route_form(channel="viber", **{"vendors.0": carrier}), "vendors.0", "this vendor carries another channel"),
    ]
    for data, name, message in cases:
        response = await post(owner, "/admin/routes/new", data, token=token)
        html = await response.text()
        assert response.status == 400, data
        assert field_error(html, name) == message, (data, name, field_error(html, name))
        assert 'aria-invalid="true"' in html
    assert await stored(db) == [("sms", None, "44", world.vendor_id, 10, True)]
    # the typed values come back
    response = await post(owner, "/admin/routes/new", cases[0][0], token=token)
    assert 'value="79a"' in await response.text()
    # editing onto another route's match is refused too, and the route stays as it was
    await routing.save_rule(db, world.owner, RuleKey("sms"), [world.backup])
    response = await post(owner, "/admin/routes/sms-default", route_form(prefix="44", **{"vendors.0": carrier}),
                          token=token)
    assert response.status == 400
    assert field_error(await response.text(), "prefix") == "a route for this channel and match exists; edit that one"
    assert (await routing.get_rule(db, world.owner, RuleKey("sms"))).vendors[0].id == world.backup


async def test_add_a_fallback_shows_one_more_place_and_saves_nothing(owner, world, db):
    data = route_form(prefix="7", **{"vendors.0": str(world.vendor_id), "_more": "1"})
    response = await post(owner, "/admin/routes/new", data)
    html = await response.text()
    assert response.status == 200
    assert 'name="vendors.3"' in html and 'name="vendors.4"' not in html and 'value="7"' in html
    assert field_error(html, "vendors.0") is None
    assert await stored(db) == []


async def test_list_filters_and_pages(owner, world, db):
    await routing.save_rule(db, world.owner, RuleKey("sms"), [world.vendor_id])
    await routing.save_rule(db, world.owner, RuleKey("sms", mccmnc="250"), [world.backup, world.vendor_id])
    await routing.save_rule(db, world.owner, RuleKey("sms", prefix="2507"), [world.asleep, world.backup])
    await routing.save_rule(db, world.owner, RuleKey("viber", mccmnc="25001"), [world.viber])
    for n in range(30):
        await routing.save_rule(db, world.owner, RuleKey("sms", prefix=f"49{n:02d}"), [world.backup])

    def matches(html: str) -> list[str]:
        return re.findall(r'<td class="col-match"><a href="/admin/routes/([a-z0-9-]+)"', html)

    _, html = await page(owner, "/admin/routes?channel=viber")
    assert matches(html) == ["viber-mccmnc-25001"]
    _, html = await page(owner, "/admin/routes?" + urlencode({"match": "250"}))
    assert matches(html) == ["sms-mccmnc-250", "sms-prefix-2507", "viber-mccmnc-25001"]
    assert "Asleep (not used) → Backup" in html
    _, html = await page(owner, "/admin/routes?" + urlencode({"match": "250", "channel": "sms"}))
    assert matches(html) == ["sms-mccmnc-250", "sms-prefix-2507"]
    _, html = await page(owner, f"/admin/routes?vendor={world.vendor_id}")
    assert matches(html) == ["sms-default", "sms-mccmnc-250"]
    _, html = await page(owner, "/admin/routes?match=_")
    assert matches(html) == []
    # 34 routes: a page of 25 in order (default, MCC(MNC), prefixes), then the rest
    _, html = await page(owner, "/admin/routes")
    first = matches(html)
    assert len(first) == 25 and first[:3] == ["sms-default", "sms-mccmnc-250", "sms-prefix-2507"]
    next_url = re.search(r'href="(/admin/routes\?after=[^"]+)"', html).group(1).replace("&amp;", "&")
    _, html = await page(owner, next_url)
    rest = matches(html)
    assert rest == [f"sms-prefix-49{n:02d}" for n in range(22, 30)] + ["viber-mccmnc-25001"]
    status, _ = await page(owner, "/admin/routes?after=WyJpIiwxXQ")  # a cursor of another shape
    assert status == 200


async def test_the_test_box_shows_the_matching_routes_and_the_order(owner, world, db):
    await db.execute("""INSERT INTO number_prefixes (prefix, mcc, mnc, country, network)
                        VALUES ('7', '250', NULL, 'RU', ''), ('7916', '250', '01', 'RU', 'MTS')""")
    await routing.save_rule(db, world.owner, RuleKey("sms"), [world.vendor_id])
    await routing.save_rule(db, world.owner, RuleKey("sms", mccmnc="25001"), [world.backup, world.asleep])
    _, html = await page(owner, "/admin/routes")
    assert 'action="/admin/routes/test"' in html and 'name="number"' in html

    async def test(**query) -> tuple[int, str]:
        return await page(owner, "/admin/routes/test?" + urlencode({"channel": "sms", **query}))

    status, html = await test(number="+7 916 123-45-67")
    assert status == 200
    assert "+79161234567" in html and "<strong>25001</strong> · RU · MTS" in html
    order = re.search(r"<ol data-vendor-order>(.*?)</ol>", html, re.S).group(1)
    assert re.findall(r"<li>([^<]+)</li>", order) == ["Backup", "Carrier"]  # Asleep is disabled: skipped
    assert '<a href="/admin/routes/sms-mccmnc-25001">Network 25001 (RU)</a>: Backup' in html
    assert '<a href="/admin/routes/sms-default">Default route</a>: Carrier' in html
    # another number of the same country: the default route only
    _, html = await test(number="79261234567")
    assert re.findall(r"<li>([^<]+)</li>", re.search(r"<ol data-vendor-order>(.*?)</ol>", html, re.S).group(1)) \
        == ["Carrier"]
    # an MCCMNC typed by hand wins over the reference book
    _, html = await test(number="79261234567", mccmnc="25001")
    assert "Network 25001 (RU)" in html and "(as entered)" in html
    # refusals the pipeline would give
    _, html = await test(number="79161234567", channel="viber")
    assert "No route matches: the message would be refused." in html
    _, html = await test(number="4915112345678")
    assert "The reference book knows no network for this number" in html
    status, html = await test(number="12")
    assert status == 400 and field_error(html, "number") == "This is not a valid phone number."
    status, html = await test(number="79161234567", mccmnc="2501")
    assert status == 400 and field_error(html, "mccmnc") == "an MCCMNC is 3 (country), 5 or 6 digits"
    status, html = await test(number="")
    assert status == 400 and field_error(html, "number") == "This field is required."
    status, html = await page(owner, "/admin/routes/test")
    assert status == 200 and "data-route-result" not in html


async def test_bad_route_addresses_are_404(owner, world):
    for path in ("/admin/routes/sms-prefix-7a", "/admin/routes/fax-default", "/admin/routes/sms-default",
                 "/admin/routes/sms-prefix-0071x"):
        assert (await page(owner, path))[0] == 404, path


async def test_only_the_system_owner_reaches_routes(client, world, db, app, make_client):
    await routing.save_rule(db, world.owner, RuleKey("sms"), [world.vendor_id])
    gets = ["/admin/routes", "/admin/routes/new", "/admin/routes/test?channel=sms&number=79161234567",
            "/admin/routes/sms-default"]
    posts = ["/admin/routes/new", "/admin/routes/sms-default", "/admin/routes/sms-default/delete"]
    # signed out: the sign-in page
    for path in gets:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/signin?next="), path
    # a reseller (an admin, but not of the system): no menu entry, 403 everywhere
    await sign_in(client, RESELLER_EMAIL)
    _, html = await page(client, "/admin/partners")
    assert 'href="/admin/routes"' not in html
    token = await token_for(client, "/admin/partners/new")
    for path in gets:
        assert (await page(client, path))[0] == 403, path
    for path in posts:
        response = await post(client, path, route_form(prefix="1", **{"vendors.0": str(world.vendor_id)}),
                              token=token)
        assert response.status == 403, path
    # an end user: 403
    await sign_in(client, INSIDE_EMAIL)
    for path in gets:
        assert (await page(client, path))[0] == 403, path
    assert await stored(db) == [("sms", None, None, world.vendor_id, 10, True)]
    # the owner's forms need the CSRF token
    owner = await make_client(app)
    await sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD)
    for path in posts:
        response = await post(owner, path, route_form(**{"vendors.0": str(world.vendor_id)}), csrf=False)
        assert response.status == 403, path
    assert await stored(db) == [("sms", None, None, world.vendor_id, 10, True)]


async def test_the_screen_speaks_the_admins_language(owner, world, db):
    await routing.save_rule(db, world.owner, RuleKey("sms", mccmnc="25001"), [world.vendor_id])
    for language, words in (("es", ("Rutas de mensajes", "Red 25001 (RU)", "Probar un número")),
                            ("ru", ("Маршруты сообщений", "Сеть 25001 (RU)", "Проверить номер")),
                            ("tr", ("Mesaj rotaları", "Ağ 25001 (RU)", "Numara test et"))):
        await db.execute("UPDATE users SET language = $2 WHERE email = $1", ADMIN_EMAIL, language)
        _, html = await page(owner, "/admin/routes")
        for word in words:
            assert word in html, (language, word)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_route_made_and_tested_in_a_browser(tab, live_url, db):  # noqa: F811
    """The owner orders two vendors in the form, saves, and tests a number; screenshots both themes."""
    w = await build_world(db)
    backup = await vendors.create_vendor(db, w.owner, vendors.NewVendor(
        "Backup", smpp_host="127.0.0.1", smpp_port=2776, system_id="herald"))
    await db.execute("INSERT INTO number_prefixes (prefix, mcc, mnc, country, network)"
                     " VALUES ('7916', '250', '01', 'RU', 'MTS')")
    page = tab
    await page.goto(f"{live_url}/signin")
    await page.get_by_label("E-mail").fill(ADMIN_EMAIL)
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{live_url}/")
    await page.goto(f"{live_url}/admin/partners")
    await page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Message routes").click()
    await page.wait_for_url("**/admin/routes")
    await page.get_by_role("link", name="New route").click()
    await page.get_by_role("textbox", name="Number prefix").fill("7916")
    await page.get_by_role("combobox", name="Primary vendor").select_option(label="Backup · SMS")
    await page.get_by_role("combobox", name="Fallback 1").select_option(label="Carrier · SMS")
    await page.get_by_role("button", name="Add a fallback").click()
    assert await page.get_by_role("combobox", name="Fallback 3").count() == 1
    assert await page.get_by_role("textbox", name="Number prefix").input_value() == "7916"
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/admin/routes")
    row = page.locator("tr", has_text="Number prefix 7916")
    assert "Backup → Carrier" in await row.inner_text()
    assert [r.vendor_id for r in await routing.list_routes(db)] == [backup.id, w.vendor_id]

    await page.get_by_role("textbox", name="Phone number").fill("+7 916 123 45 67")
    await page.get_by_role("button", name="Test", exact=True).click()
    await page.wait_for_url("**/admin/routes/test?**")
    result = page.locator("[data-route-result]")
    assert await result.locator("ol li").all_inner_texts() == ["Backup", "Carrier"]
    assert "25001" in await result.inner_text()
    admin_id = await db.fetchval("SELECT id FROM users WHERE email = $1", ADMIN_EMAIL)
    for theme in ("light", "dark"):
        await db.execute("UPDATE users SET theme = $2 WHERE id = $1", admin_id, theme)
        for name, path in (("routes", "/admin/routes"), ("route", "/admin/routes/sms-prefix-7916"),
                           ("route-test", "/admin/routes/test?channel=sms&number=79161234567")):
            await page.goto(f"{live_url}{path}")
            await _shoot(page, f"admin-{name}", theme)
