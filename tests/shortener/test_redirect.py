"""The redirect service over real HTTP: on Herald's HTTP port (Host set) and on the short-link port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from shortener import clicks, links
from shortener.web import SHORTENER, RedirectListener
from tests.shortener.test_pure import ANDROID, IPHONE
from tests.shortener.world import build

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def landing():
    """A site of the campaign's own: the page a short link should land on."""
    hits: list[str] = []

    async def page(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(text="landed")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def world(db):
    return await build(db)


@pytest_asyncio.fixture(loop_scope="session")
async def herald(app, world, make_client):
    """Herald's web app on a real port (the world exists before it starts), and its short-link port."""
    client = await make_client(app)
    listener = RedirectListener(app)
    await listener.start()
    yield client, f"http://127.0.0.1:{listener.port}", app[SHORTENER]
    await listener.stop()


async def test_a_short_link_lands_on_the_original_url(herald, world, db, landing):
    client, short_port, shortener = herald
    site, hits = landing
    link = await links.create_link(db, partner_id=world.alpha, user_id=world.alpha_user, domain_id=world.go.id,
                                   original_url=f"{site}/spring?utm=sms", campaign_id=11, name="Spring")
    main_port = f"http://127.0.0.1:{client.server.port}"
    async with aiohttp.ClientSession() as http:
        # on Herald's HTTP port, as a browser following the link from an SMS would
        async with http.get(f"{main_port}/{link.code}", headers={"Host": "go.herald.test", "User-Agent": IPHONE},
                            allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == f"{site}/spring?utm=sms"
            assert response.headers["Cache-Control"] == "private, no-store"
        async with http.get(f"{main_port}/{link.code}", headers={"Host": "GO.herald.test:443", "User-Agent": IPHONE}) as response:
            assert response.status == 200 and await response.text() == "landed"
            assert str(response.url) == f"{site}/spring?utm=sms"
        # on the short-link port, with another browser, and a previewer that is counted apart
        async with http.get(f"{short_port}/{link.code}", headers={"Host": "go.herald.test", "User-Agent": ANDROID}) as response:
            assert await response.text() == "landed"
        async with http.get(f"{short_port}/{link.code}", headers={"Host": "go.herald.test", "User-Agent": "WhatsApp/2.23.20.0 A"},
                            allow_redirects=False) as response:
            assert response.status == 302
        async with http.head(f"{short_port}/{link.code}", headers={"Host": "go.herald.test", "User-Agent": IPHONE},
                             allow_redirects=False) as response:
            assert response.status == 302
    assert hits == ["/spring?utm=sms", "/spring?utm=sms"]
    assert await shortener.writer.flush() == 5
    assert await clicks.breakdown(db, world.alpha, [link.id], None, "os") == [("iOS", 2), ("Android", 1)]
    assert await clicks.breakdown(db, world.alpha, [link.id], None, "browser") == [
        ("Mobile Safari", 2), ("Chrome Mobile", 1)]
    counters = await db.fetchrow("SELECT clicks, bot_clicks FROM short_links WHERE id = $1", link.id)
    assert (counters["clicks"], counters["bot_clicks"]) == (3, 2)


async def test_per_recipient_links_record_who_clicked(herald, world, db):
    _client, short_port, shortener = herald
    link = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://shop.example.com/", campaign_id=12, per_recipient=True)
    made = await links.recipient_links(db, link, ["447700900001", "447700900002"])
    async with aiohttp.ClientSession() as http:
        code = made["447700900002"].rsplit("/", 1)[1]
        for _ in range(2):
            async with http.get(f"{short_port}/{code}", headers={"Host": "go.herald.test", "User-Agent": IPHONE},
                                allow_redirects=False) as response:
                assert response.status == 302
    await shortener.writer.flush()
    who = await clicks.clicked_recipients(db, world.alpha, link.id)
    assert [(w.recipient, w.clicks) for w in who] == [("447700900002", 2)]
    assert who[0].first_click_at is not None


async def test_what_answers_not_found(herald, world, db):
    _client, short_port, shortener = herald
    await db.execute("UPDATE portals SET name = '<b>Acme</b> & Co', support_email = 'help@acme.test' WHERE is_default")
    archived = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                       original_url="https://archived.example/", name="Old")
    expired = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                      original_url="https://expired.example/",
                                      expires_at=datetime.now(UTC) - timedelta(minutes=1))
    async with aiohttp.ClientSession() as http:
        async def get(path, host="go.herald.test", language="en", method="GET"):
            async with http.request(method, f"{short_port}{path}", allow_redirects=False,
                                    headers={"Host": host, "Accept-Language": language}) as response:
                return response.status, response.headers, await response.text()

        assert (await get(f"/{archived.code}"))[0] == 302  # cached as live
        await links.archive_links(db, world.alpha, [archived.id])
        await shortener.changed()  # what the portal's archive action does
        status, headers, html = await get(f"/{archived.code}", language="es-ES,es;q=0.9")
        assert status == 404
        assert "Lo sentimos" in html and headers["Content-Language"] == "es"
        assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Co" in html and "<b>Acme" not in html
        assert "help@acme.test" in html
        assert "style-src 'sha256-" in headers["Content-Security-Policy"]
        status, _, html = await get(f"/{expired.code}", language="ru")
        assert status == 404 and "Извините" in html
        status, _, html = await get("/Zz9Zz9Zz", language="tr")
        assert status == 404 and "Üzgünüz" in html
        for path in ("/", "/not-a-code", "/%00", "/" + "a" * 40, "/favicon.ico"):
            assert (await get(path))[0] == 404, path
        # a switched-off domain answers nothing but 404
        off = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                      original_url="https://x.example/")
        await db.execute("UPDATE short_codes SET domain_id = $1 WHERE code = $2", world.off.id, off.code)
        assert (await get(f"/{off.code}", host="off.herald.test"))[0] == 404
        # only GET and HEAD
        status, headers, _ = await get(f"/{archived.code}", method="POST")
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        # a host that is no short domain, on the short-link port
        assert (await get(f"/{archived.code}", host="elsewhere.test"))[0] == 404
    await shortener.writer.flush()
    assert await db.fetchval("SELECT count(*) FROM short_clicks") == 1  # the one redirect above


async def test_the_portal_still_answers_its_own_host(herald):
    client, _, _ = herald
    response = await client.get("/signin")
    assert response.status == 200 and "Sign in" in await response.text()
    response = await client.get("/signin", headers={"Host": "go.herald.test"}, allow_redirects=False)
    assert response.status == 404  # a short domain never shows the portal


async def test_the_short_link_port_is_a_service_of_every_role(settings, make_client, world, db):
    from gateway.runtime.main import build_app
    from gateway.runtime.services import build_services

    link = await links.create_link(db, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://shop.example.com/")
    assert not any(isinstance(s, RedirectListener)
                   for s in build_services((await make_client(build_app(settings.replace(role="ingress")))).app))
    client = await make_client(build_app(settings.replace(role="ingress", short_listener=True)))
    services = build_services(client.app)
    (listener,) = [s for s in services if isinstance(s, RedirectListener)]
    answer = await client.get("/healthz?service=short_links")
    assert answer.status == 503 and (await answer.json())["services"]["short_links"] == "not listening"
    await listener.start()
    try:
        assert (await client.get("/healthz?service=short_links")).status == 200
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{listener.port}/{link.code}", headers={"Host": "go.herald.test"},
                allow_redirects=False) as response:
            assert response.status == 302
    finally:
        await listener.stop()


async def test_the_404_pages_logo_is_reachable_from_a_short_domain():
    from types import SimpleNamespace

    from shortener import domains
    from shortener.web import NotFoundPages

    pages = NotFoundPages(SimpleNamespace(public_url="https://sms.acme.test"))

    def brand(url: str) -> domains.Brand:
        return domains.Brand("Acme", url, "#ff6600", "", ("en",), "en")

    assert pages._logo(brand("https://cdn.acme.test/logo.svg")) == "https://cdn.acme.test/logo.svg"
    assert pages._logo(brand("/static/favicon.svg")) == "https://sms.acme.test/static/favicon.svg"
    assert pages._logo(brand("//elsewhere.test/x.svg")) == ""
    assert pages._logo(brand("javascript:alert(1)")) == ""
    pages.shortener.public_url = ""
    assert pages._logo(brand("/static/favicon.svg")) == ""  # the initial of the name instead
