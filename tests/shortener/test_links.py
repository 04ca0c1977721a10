"""Short domains, grants, the campaigns' hook (links and codes), archive and purge, clicks in SQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from accounts.tenancy import Scope
from config.errors import Conflict, Forbidden, Invalid, NotFound
from shortener import clicks, codes, domains, links
from tests.shortener.world import build

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def world(conn):
    return await build(conn)


async def test_domains_are_the_owners(conn, world):
    assert world.go.host == "go.herald.test"
    with pytest.raises(Conflict):
        await domains.create_domain(conn, world.owner, "go.herald.test.")
    portal_host = await conn.fetchval("SELECT host FROM portals WHERE is_default")
    if "." in portal_host and not portal_host.replace(".", "").isdigit():
        with pytest.raises(Conflict):
            await domains.create_domain(conn, world.owner, portal_host)
    await conn.execute("INSERT INTO portals (owner_partner_id, name, host) VALUES ($1, 'P', 'sms.acme.test')",
                       world.owner.partner_id)
    with pytest.raises(Conflict) as caught:
        await domains.create_domain(conn, world.owner, "SMS.acme.test")
    assert caught.value.field == "host"
    for bad in ("https://x.test/", "x.test:80", "localhost", "192.0.2.1", "a..b", "-x.test", "x_y.test"):
        with pytest.raises(Invalid):
            await domains.create_domain(conn, world.owner, bad)
    idn = await domains.create_domain(conn, world.owner, "kısa.example")
    assert idn.host == "kısa.example".encode("idna").decode()
    client = Scope(world.alpha, "client", world.alpha_user)
    with pytest.raises(Forbidden):
        await domains.create_domain(conn, client, "mine.test")
    with pytest.raises(Forbidden):
        await domains.list_domains(conn, client)
    with pytest.raises(NotFound):
        await domains.get_domain(conn, world.owner, 2**62)


async def test_who_may_use_a_domain(conn, world):
    assert [d.host for d in await domains.usable_domains(conn, world.alpha_user)] == ["go.herald.test"]
    assert [d.host for d in await domains.usable_domains(conn, world.beta_user)] == ["lnk.herald.test"]
    # a portal grant reaches every user of the portal once the domain is switched on
    await domains.set_enabled(conn, world.owner, world.off.id, True)
    assert {d.host for d in await domains.usable_domains(conn, world.beta_user)} == {
        "lnk.herald.test", "off.herald.test"}
    await domains.set_enabled(conn, world.owner, world.off.id, False)
    # a grant to a partner reaches the partners below it (the owner's: everyone)
    await domains.add_grant(conn, world.owner, world.lnk.id, "partner", world.owner.partner_id)
    assert "lnk.herald.test" in {d.host for d in await domains.usable_domains(conn, world.alpha_user)}
    grants = await domains.list_grants(conn, world.owner, world.lnk.id)
    assert {(g.kind, g.label) for g in grants} >= {("partner", "Beta")}
    owner_grant = next(g for g in grants if g.target_id == world.owner.partner_id)
    await domains.remove_grant(conn, world.owner, world.lnk.id, owner_grant.id)
    assert "lnk.herald.test" not in {d.host for d in await domains.usable_domains(conn, world.alpha_user)}
    with pytest.raises(NotFound):
        await domains.remove_grant(conn, world.owner, world.go.id, owner_grant.id)
    with pytest.raises(NotFound):
        await domains.add_grant(conn, world.owner, world.go.id, "user", 2**62)
    assert await domains.may_use(conn, world.go.id, world.alpha, world.alpha_user)
    assert await domains.may_use(conn, world.go.id, world.alpha)
    assert not await domains.may_use(conn, world.go.id, world.beta, world.beta_user)
    assert not await domains.may_use(conn, world.go.id, world.beta)
    assert not await domains.may_use(conn, world.go.id, world.beta, world.alpha_user)  # not Beta's user


async def test_one_link_per_campaign_and_domain(conn, world):
    link = await links.create_link(conn, partner_id=world.alpha, user_id=world.alpha_user,
                                   domain_id=world.go.id, original_url="HTTPS://Shop.example.com/sale",
                                   campaign_id=501, name="Spring sale")
    assert link.original_url == "https://shop.example.com/sale"
    assert link.url == f"https://go.herald.test/{link.code}" and codes.is_code(link.code)
    assert len(link.url) == codes.short_link_length("go.herald.test")
    # the cascade's second channel asks again: the same link
    again = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                    original_url="https://shop.example.com/sale", campaign_id=501)
    assert again.id == link.id and again.url == link.url
    with pytest.raises(Conflict):
        await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                original_url="https://shop.example.com/other", campaign_id=501)
    # without a campaign, each call makes a link of its own
    first = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                    original_url="https://a.example/")
    second = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                     original_url="https://a.example/")
    assert first.id != second.id and first.code != second.code
    assert await links.link_for_campaign(conn, 501, world.go.id) == link


async def test_refusals(conn, world):
    with pytest.raises(Invalid) as caught:
        await links.create_link(conn, partner_id=world.beta, user_id=world.beta_user, domain_id=world.go.id,
                                original_url="https://shop.example.com/")
    assert caught.value.field == "short_domain"
    with pytest.raises(Invalid) as caught:  # switched off: not offered even though granted
        await links.create_link(conn, partner_id=world.beta, domain_id=world.off.id,
                                original_url="https://shop.example.com/")
    assert caught.value.field == "short_domain"
    for url in ("javascript:alert(1)", "data:text/html,x", "https://lnk.herald.test/abcdefgh",
                "https://off.herald.test/x"):
        with pytest.raises(Invalid) as caught:
            await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id, original_url=url)
        assert caught.value.field == "original_url"
    assert await conn.fetchval("SELECT count(*) FROM short_links") == 0


async def test_per_recipient_codes(conn, world):
    link = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://shop.example.com/", campaign_id=77, per_recipient=True)
    assert link.code is None and link.url is None
    phones = [f"4477009{n:05d}" for n in range(300)]
    made = await links.recipient_links(conn, link, phones + phones[:5])
    assert set(made) == set(phones) and len(set(made.values())) == 300
    assert all(url.startswith("https://go.herald.test/") for url in made.values())
    # asked again (the SMS of a cascade, a resumed run): the same codes
    assert await links.recipient_links(conn, link, phones[:10]) == {p: made[p] for p in phones[:10]}
    message_ids = {p: uuid.uuid4() for p in phones[:3]}
    assert await links.attach_messages(conn, link.id, list(message_ids.items())) == 3
    shared = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                     original_url="https://shop.example.com/")
    with pytest.raises(Invalid):
        await links.recipient_codes(conn, shared, phones[:1])


async def test_collisions_are_drawn_again(conn, world, monkeypatch):
    taken = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                    original_url="https://a.example/")
    draws = iter([taken.code, taken.code, "Fresh123"])
    monkeypatch.setattr(codes, "new_code", lambda length=8: next(draws))
    fresh = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                    original_url="https://b.example/")
    assert fresh.code == "Fresh123"
    per = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                  original_url="https://c.example/", per_recipient=True)
    batches = iter([[taken.code, "Other123"], ["Third123"]])
    monkeypatch.setattr(codes, "new_codes", lambda count, length=8: next(batches)[:count])
    made = await links.recipient_codes(conn, per, ["111", "222"])
    assert sorted(made.values()) == ["Other123", "Third123"]


async def test_archive_and_purge(conn, world):
    kept = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://keep.example/", name="Kept")
    gone = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://gone.example/", name="Gone")
    # another partner's ids change nothing
    assert await links.archive_links(conn, world.beta, [gone.id]) == 0
    assert await links.archive_links(conn, world.alpha, [gone.id, gone.id]) == 1
    assert await links.archive_links(conn, world.alpha, [gone.id]) == 0
    target = await links.find_target(conn, world.go.id, gone.code)
    assert target.archived and target.url == "https://gone.example/"
    await clicks.write_batch(conn, [clicks.Click(target.code_id, datetime.now(UTC), False, "iOS", "Safari", "iPhone")])
    archived_at = await conn.fetchval("SELECT archived_at FROM short_links WHERE id = $1", gone.id)
    assert await links.purge_archived(conn, archived_at + timedelta(days=29)) == 0
    assert await links.purge_archived(conn, archived_at + timedelta(days=30, seconds=1), batch=1) == 1
    assert await links.find_target(conn, world.go.id, gone.code) is None
    assert await conn.fetchval("SELECT count(*) FROM short_clicks WHERE link_id = $1", gone.id) == 0
    assert (await links.find_target(conn, world.go.id, kept.code)).archived is False
    assert await links.archive_domain(conn, world.alpha, world.go.id) == 1
    with pytest.raises(NotFound):
        await links.get_link(conn, world.beta, kept.id)


async def test_clicks_counters_and_statistics(conn, world):
    link = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                   original_url="https://shop.example.com/", campaign_id=9, per_recipient=True)
    made = await links.recipient_codes(conn, link, ["111", "222"])
    ids = {r["recipient"]: r["id"] for r in await conn.fetch("SELECT id, recipient FROM short_codes")}
    t0 = datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    batch = [
        clicks.Click(ids["111"], t0, False, "iOS", "Mobile Safari", "iPhone"),
        clicks.Click(ids["111"], t0 + timedelta(hours=2), False, "iOS", "Mobile Safari", "iPhone"),
        clicks.Click(ids["222"], t0 + timedelta(days=1), False, "Android", "Chrome Mobile", "Samsung"),
        clicks.Click(ids["222"], t0, True, "Other", "WhatsApp", "Spider", user_agent="WhatsApp/2"),
        clicks.Click(2**62, t0, False, "iOS", "Safari", "iPhone"),  # a code purged meanwhile: dropped
    ]
    assert await clicks.write_batch(conn, batch) == 4
    row = await conn.fetchrow("SELECT clicks, bot_clicks FROM short_links WHERE id = $1", link.id)
    assert (row["clicks"], row["bot_clicks"]) == (3, 1)
    first = await conn.fetchrow("SELECT clicks, first_click_at, last_click_at FROM short_codes WHERE id = $1",
                                ids["111"])
    assert (first["clicks"], first["first_click_at"], first["last_click_at"]) == (2, t0, t0 + timedelta(hours=2))
    assert await clicks.breakdown(conn, world.alpha, [link.id], None, "os") == [("iOS", 2), ("Android", 1)]
    assert await clicks.breakdown(conn, world.alpha, [link.id], None, "browser") == [
        ("Mobile Safari", 2), ("Chrome Mobile", 1)]
    assert await clicks.timeline(conn, world.alpha, [link.id], None, "day") == {
        datetime(2026, 3, 1, tzinfo=UTC): 2, datetime(2026, 3, 2, tzinfo=UTC): 1}
    assert await clicks.timeline(conn, world.alpha, [link.id], t0 + timedelta(hours=1), "hour") == {
        datetime(2026, 3, 1, 11, tzinfo=UTC): 1, datetime(2026, 3, 2, 9, tzinfo=UTC): 1}
    total = await clicks.totals(conn, world.alpha, [link.id], None)
    assert (total.people, total.bots, total.first_click) == (3, 1, t0)
    # another partner reading the same link ids sees nothing
    assert await clicks.breakdown(conn, world.beta, [link.id], None, "os") == []
    assert (await clicks.totals(conn, world.beta, [link.id], None)).people == 0
    assert await clicks.report_page(conn, world.beta, [link.id], 0, 100) == []
    rows = await clicks.report_page(conn, world.alpha, [link.id], 0, 100)
    assert sorted((r["recipient"], r["bot"], r["code"]) for r in rows) == [
        ("111", False, made["111"]), ("111", False, made["111"]), ("222", False, made["222"]),
        ("222", True, made["222"])]
    assert [r.recipient for r in await clicks.clicked_recipients(conn, world.alpha, link.id)] == ["222", "111"]
    message = uuid.uuid4()
    await links.attach_messages(conn, link.id, [("222", message)])
    by_message = await clicks.clicks_by_message(conn, world.alpha, [message])
    assert by_message[message].clicks == 1 and by_message[message].first_click_at == t0 + timedelta(days=1)
    assert await clicks.clicks_by_message(conn, world.beta, [message]) == {}


async def test_tree(conn, world):
    older = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                    original_url="https://a.example/", name="Winter offer", campaign_id=1)
    newer = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                    original_url="https://b.example/", name="Spring <sale>", campaign_id=2)
    await conn.execute("UPDATE short_links SET created_at = created_at - interval '1 day' WHERE id = $1", older.id)
    tree = await links.partner_tree(conn, world.alpha, world.alpha_user, archived=False)
    assert [(d.host, [link.name for link in d.links]) for d in tree] == [
        ("go.herald.test", ["Spring <sale>", "Winter offer"])]
    assert [d.host for d in await links.partner_tree(conn, world.beta, world.beta_user, archived=False)] == [
        "lnk.herald.test"]
    assert [link.name for d in await links.partner_tree(conn, world.alpha, world.alpha_user, archived=False,
                                                        query="WINTER") for link in d.links] == ["Winter offer"]
    assert await links.partner_tree(conn, world.alpha, world.alpha_user, archived=False, query="zzz") == []
    await links.archive_links(conn, world.alpha, [older.id])
    await links.archive_links(conn, world.alpha, [newer.id])
    archive = await links.partner_tree(conn, world.alpha, world.alpha_user, archived=True)
    assert [link.name for link in archive[0].links] == ["Spring <sale>", "Winter offer"]  # latest archived first
    assert sorted(await links.partner_links(conn, world.alpha, world.go.id, archived=True)) == sorted(
        [older.id, newer.id])
    assert await links.partner_links(conn, world.beta, world.go.id, archived=True) == []


async def test_the_campaign_hook_in_one_call(conn, world):
    from shortener import text

    message = "Spring sale! https://shop.example.com/spring?utm=sms until Sunday"
    original = text.find_link(message)
    preview = text.preview_text(message, original, world.go.host)
    shared = await links.shorten(conn, partner_id=world.alpha, user_id=world.alpha_user, domain_id=world.go.id,
                                 original_url=original, campaign_id=900, name="Spring sale")
    sent = text.replace_link(message, original, shared.for_recipient("447700900001"))
    assert sent == message.replace(original, shared.url) and len(sent) == len(preview)
    # the SMS channel of the cascade asks again: the same short link
    again = await links.shorten(conn, partner_id=world.alpha, domain_id=world.go.id, original_url=original,
                                campaign_id=900)
    assert again.url == shared.url
    per = await links.shorten(conn, partner_id=world.alpha, domain_id=world.go.id, original_url=original,
                              campaign_id=901, per_recipient=True, recipients=["447700900001", "447700900002"])
    first, second = per.for_recipient("447700900001"), per.for_recipient("447700900002")
    assert first != second and len(first) == len(second) == codes.short_link_length(world.go.host)
    more = await links.shorten(conn, partner_id=world.alpha, domain_id=world.go.id, original_url=original,
                               campaign_id=901, per_recipient=True, recipients=["447700900002", "447700900003"])
    assert more.for_recipient("447700900002") == second
