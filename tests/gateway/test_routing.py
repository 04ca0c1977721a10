"""Routing: the pure choice, and the table as stored."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.tenancy import Scope, owner_scope
from config.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.accept import routing
from gateway.accept.routing import Route, RoutingTable, RuleKey


def table(*routes: Route) -> RoutingTable:
    return RoutingTable(routes)


def test_most_specific_level_first_then_the_others_as_fallbacks():
    t = table(
        Route("sms", 1, id=1),                               # default
        Route("sms", 2, mccmnc="250", id=2),                 # Russia
        Route("sms", 3, mccmnc="25001", priority=20, id=3),  # MTS
        Route("sms", 4, mccmnc="25001", priority=10, id=4),
        Route("sms", 5, prefix="7916", id=5),
        Route("sms", 6, prefix="79161", id=6),
        Route("viber", 9, id=9),
    )
    assert t.choose("sms", "79161234567", "25001") == (6, 4, 3, 2, 1)   # longest prefix only
    assert t.choose("sms", "79169999999", "25001") == (5, 4, 3, 2, 1)
    assert t.choose("sms", "79261234567", "25002") == (2, 1)
    assert t.choose("sms", "79261234567", "250") == (2, 1)
    assert t.choose("sms", "4915112345678", "262") == (1,)
    assert t.choose("viber", "79161234567", "25001") == (9,)


def test_priority_then_id_orders_a_level_and_a_vendor_appears_once():
    t = table(Route("sms", 7, priority=5, id=3), Route("sms", 8, priority=5, id=2),
              Route("sms", 9, priority=1, id=9), Route("sms", 7, mccmnc="262", id=4))
    assert t.choose("sms", "4915112345678", "262") == (7, 9, 8)
    assert t.choose("sms", "33612345678", "208") == (9, 8, 7)


def test_no_route():
    assert table().choose("sms", "79161234567", "25001") == ()
    assert table(Route("viber", 1)).choose("sms", "79161234567", "25001") == ()
    assert table(Route("sms", 1, mccmnc="262")).choose("sms", "79161234567", None) == ()


def test_check_route_rules():
    assert routing.check_route(Route("sms", 1, prefix="+7916")).prefix == "7916"
    for bad in (Route("fax", 1), Route("sms", 1, prefix="79", mccmnc="250"),
                Route("sms", 1, prefix="7a"), Route("sms", 1, mccmnc="2500")):
        with pytest.raises(Invalid):
            routing.check_route(bad)


async def _vendor(conn, name: str, channel: str = "sms", enabled: bool = True) -> int:
    if channel == "sms":
        return await conn.fetchval(
            """INSERT INTO vendors (name, channel, protocol, smpp_host, smpp_port, system_id, enabled)
               VALUES ($1, 'sms', 'smpp', '127.0.0.1', 2775, 'x', $2) RETURNING id""", name, enabled)
    return await conn.fetchval(
        """INSERT INTO vendors (name, channel, protocol, http_base_url, enabled)
           VALUES ($1, 'viber', 'http', 'http://127.0.0.1:9', $2) RETURNING id""", name, enabled)


async def test_stored_routes_skip_disabled_and_mismatched_vendors(conn):
    a = await _vendor(conn, "a")
    b = await _vendor(conn, "b", enabled=False)
    v = await _vendor(conn, "v", channel="viber")
    await routing.add_route(conn, Route("sms", a))
    await routing.add_route(conn, Route("sms", b, mccmnc="250", priority=1))
    await routing.add_route(conn, Route("sms", v, prefix="7"))       # a Viber vendor on SMS
    with pytest.raises(Conflict):
        await routing.add_route(conn, Route("sms", a))
    with pytest.raises(Invalid):
        await routing.add_route(conn, Route("sms", 999_999))
    rev, t = await routing.load_table(conn)
    assert t.choose("sms", "79161234567", "25001") == (a,)
    await conn.execute("UPDATE vendors SET enabled = true WHERE id = $1", b)
    rev2, t = await routing.load_table(conn)
    assert rev2 > rev
    assert t.choose("sms", "79161234567", "25001") == (b, a)
    assert len(await routing.list_routes(conn)) == 3
    route_id = (await routing.list_routes(conn))[0].id
    assert await routing.delete_route(conn, route_id)
    assert await routing.revision(conn) > rev2


# -- explain: the decision with its working shown ------------------------------------------------

def test_explain_names_each_matching_level():
    t = table(
        Route("sms", 1, id=1), Route("sms", 2, mccmnc="250", id=2),
        Route("sms", 3, mccmnc="25001", id=3), Route("sms", 1, prefix="7916", id=4),
    )
    d = routing.explain(t, "sms", "79161234567", "25001")
    assert [(lv.kind, lv.match, lv.vendor_ids) for lv in d.levels] == [
        ("prefix", "7916", (1,)), ("network", "25001", (3,)), ("country", "250", (2,)), ("default", "", (1,))]
    assert d.vendor_ids == (1, 3, 2)          # vendor 1 once, at its first place
    d = routing.explain(t, "sms", "4915112345678", "262")
    assert [lv.kind for lv in d.levels] == ["default"] and d.vendor_ids == (1,)
    assert routing.explain(t, "viber", "79161234567", "25001") == routing.Decision((), ())


_channels = st.sampled_from(["sms", "viber"])
_digits = st.text("0123456789", min_size=1, max_size=4)
_routes = st.lists(st.builds(
    Route, _channels, st.integers(1, 6), st.integers(0, 3),
    st.one_of(st.none(), st.sampled_from(["250", "25001", "25002", "262", "26201"])),
    st.one_of(st.none(), _digits),
).filter(lambda r: not (r.mccmnc and r.prefix)), max_size=12)


def _by_hand(routes, channel, msisdn, mccmnc):
    """The rule of the module doc written out plainly: (kind, match, vendor ids) per level."""
    mine = [r for r in routes if r.channel == channel]

    def level(kind, match, found):
        return [(kind, match, tuple(r.vendor_id for r in sorted(found, key=lambda r: (r.priority, r.id))))]

    levels = []
    prefixes = [r.prefix for r in mine if r.prefix and msisdn.startswith(r.prefix)]
    if prefixes:
        longest = max(prefixes, key=len)
        levels += level("prefix", longest, [r for r in mine if r.prefix == longest])
    if mccmnc and len(mccmnc) > 3 and any(r.mccmnc == mccmnc for r in mine):
        levels += level("network", mccmnc, [r for r in mine if r.mccmnc == mccmnc])
    if mccmnc and any(r.mccmnc == mccmnc[:3] for r in mine):
        levels += level("country", mccmnc[:3], [r for r in mine if r.mccmnc == mccmnc[:3]])
    if any(not r.prefix and not r.mccmnc for r in mine):
        levels += level("default", "", [r for r in mine if not r.prefix and not r.mccmnc])
    return levels


@given(_routes, _channels, st.text("0123456789", min_size=7, max_size=12),
       st.one_of(st.none(), st.sampled_from(["250", "25001", "25099", "262", "26201", "208"])))
@settings(max_examples=300, deadline=None)
def test_explain_and_choose_follow_the_rule(routes, channel, msisdn, mccmnc):
    routes = [replace(r, id=i) for i, r in enumerate(routes, 1)]
    t = table(*routes)
    expected = _by_hand(routes, channel, msisdn, mccmnc)
    decision = t.explain(channel, msisdn, mccmnc)
    assert [(lv.kind, lv.match, lv.vendor_ids) for lv in decision.levels] == expected
    order = tuple(dict.fromkeys(v for _, _, ids in expected for v in ids))
    assert decision.vendor_ids == order
    assert t.choose(channel, msisdn, mccmnc) == order == t.choose(channel, msisdn, mccmnc)  # cached too


# -- rules: the Admin Panel's view of the table ------------------------------------------------

def test_rule_keys_round_trip_through_their_slug():
    for key in (RuleKey("sms"), RuleKey("viber", mccmnc="250"), RuleKey("sms", mccmnc="310150"),
                RuleKey("sms", prefix="7916")):
        assert routing.parse_slug(key.slug) == key
    assert RuleKey("sms", prefix="7916").kind == "prefix" and RuleKey("sms", mccmnc="25001").kind == "network"
    assert RuleKey("sms", mccmnc="250").kind == "country" and RuleKey("sms").kind == "default"
    for bad in ("new", "fax-default", "sms-default-1", "sms-prefix-", "sms-prefix-7a", "sms-mccmnc-2500",
                "sms-prefix-+7916", "sms-mccmnc-25001-x", "sms-other-1"):
        with pytest.raises(NotFound):
            routing.parse_slug(bad)


def test_vendor_order_checks_name_the_position():
    known = {1: "sms", 2: "sms", 3: "viber"}
    assert routing.check_vendor_order("sms", [2, 1], known) == (2, 1)
    for ids, field in (([], "vendors.0"), ([1, 9], "vendors.1"), ([3], "vendors.0"), ([1, 2, 1], "vendors.2")):
        with pytest.raises(Invalid) as caught:
            routing.check_vendor_order("sms", ids, known)
        assert caught.value.field == field


async def test_rules_saved_listed_filtered_and_deleted(conn):
    owner = await owner_scope(conn)
    a, b, c = [await _vendor(conn, n) for n in ("a", "b", "c")]
    v = await _vendor(conn, "v", channel="viber")
    rule = await routing.save_rule(conn, owner, RuleKey("sms", prefix="+7916"), [b, a])
    assert rule.key == RuleKey("sms", prefix="7916")
    assert [x.id for x in rule.vendors] == [b, a] and rule.enabled
    await routing.save_rule(conn, owner, RuleKey("sms"), [c])
    await routing.save_rule(conn, owner, RuleKey("sms", mccmnc="25001"), [a, c], enabled=False)
    await routing.save_rule(conn, owner, RuleKey("viber", mccmnc="250"), [v])
    # the pipeline's table sees the order (the disabled rule is skipped)
    _, t = await routing.load_table(conn)
    assert t.choose("sms", "79161234567", "25001") == (b, a, c)
    # a clash and bad vendors are refused, naming the field
    with pytest.raises(Conflict) as caught:
        await routing.save_rule(conn, owner, RuleKey("sms", prefix="7916"), [c])
    assert caught.value.field == "prefix"
    with pytest.raises(Invalid) as caught:
        await routing.save_rule(conn, owner, RuleKey("sms", prefix="7"), [a, v])
    assert caught.value.field == "vendors.1"
    # listing: order, filters, keyset pages both ways
    keys = [r.key.slug for r in await routing.list_rules(conn, owner)]
    assert keys == ["sms-default", "sms-mccmnc-25001", "sms-prefix-7916", "viber-mccmnc-250"]
    assert [r.key.slug for r in await routing.list_rules(conn, owner, channel="viber")] == ["viber-mccmnc-250"]
    assert [r.key.slug for r in await routing.list_rules(conn, owner, match="250")] == [
        "sms-mccmnc-25001", "viber-mccmnc-250"]
    assert [r.key.slug for r in await routing.list_rules(conn, owner, match="%")] == []
    found = await routing.list_rules(conn, owner, vendor_id=c)
    assert [r.key.slug for r in found] == ["sms-default", "sms-mccmnc-25001"]
    assert [x.name for x in found[1].vendors] == ["a", "c"] and not found[1].enabled
    page1 = await routing.list_rules(conn, owner, limit=2)
    page2 = await routing.list_rules(conn, owner, after=page1[-1].sort_key, limit=2)
    assert [r.key.slug for r in page1 + page2] == keys
    back = await routing.list_rules(conn, owner, before=page2[0].sort_key, limit=2)
    assert back == page1
    # rewrite a rule under a new match, then delete it
    moved = await routing.save_rule(conn, owner, RuleKey("sms", prefix="7917"), [a],
                                    replaces=RuleKey("sms", prefix="7916"))
    assert [x.id for x in moved.vendors] == [a]
    with pytest.raises(NotFound):
        await routing.get_rule(conn, owner, RuleKey("sms", prefix="7916"))
    with pytest.raises(Conflict):  # moving onto another rule's key
        await routing.save_rule(conn, owner, RuleKey("sms"), [a], replaces=RuleKey("sms", prefix="7917"))
    await routing.delete_rule(conn, owner, RuleKey("sms", prefix="7917"))
    with pytest.raises(NotFound):
        await routing.delete_rule(conn, owner, RuleKey("sms", prefix="7917"))


async def test_a_disabled_vendor_shows_as_not_usable_and_only_the_owner_may_edit(conn):
    owner = await owner_scope(conn)
    a = await _vendor(conn, "a", enabled=False)
    b = await _vendor(conn, "b")
    rule = await routing.save_rule(conn, owner, RuleKey("sms"), [a, b])
    assert [(x.name, x.usable) for x in rule.vendors] == [("a", False), ("b", True)]
    reseller = Scope(owner.partner_id, "reseller")
    for call in (routing.list_rules(conn, reseller), routing.get_rule(conn, reseller, RuleKey("sms")),
                 routing.save_rule(conn, reseller, RuleKey("sms", prefix="1"), [b]),
                 routing.delete_rule(conn, reseller, RuleKey("sms"))):
        with pytest.raises(Forbidden):
            await call


async def test_destination_network_is_the_longest_stored_prefix(conn):
    # an empty book: the world table, which knows countries but not MNCs
    world = await routing.destination_network(conn, "79161234567")
    assert world is not None and world.mcc == "250"
    await conn.execute("""INSERT INTO number_prefixes (prefix, mcc, mnc, country, network)
                          VALUES ('7', '250', NULL, 'RU', ''), ('7916', '250', '01', 'RU', 'MTS')""")
    assert (await routing.destination_network(conn, "79161234567")).mccmnc == "25001"
    assert (await routing.destination_network(conn, "79261234567")).mccmnc == "250"
    assert await routing.destination_network(conn, "4915112345678") is None


async def test_trace_routes_one_number_as_the_pipeline_would(conn):
    a, b, p = await _vendor(conn, "a"), await _vendor(conn, "b"), await _vendor(conn, "p")
    await routing.add_route(conn, Route("sms", a))
    await routing.add_route(conn, Route("sms", b, mccmnc="25001"))
    await routing.add_route(conn, Route("sms", p, prefix="7916"))
    await conn.execute("""INSERT INTO number_prefixes (prefix, mcc, mnc, country, network)
                          VALUES ('7', '250', NULL, 'RU', ''), ('7916', '250', '01', 'RU', 'MTS')""")
    found = await routing.trace(conn, "sms", "79161234567")
    assert (found.msisdn, found.mccmnc, found.network.network) == ("79161234567", "25001", "MTS")
    assert found.levels == ((RuleKey("sms", prefix="7916"), (p,)), (RuleKey("sms", mccmnc="25001"), (b,)),
                            (RuleKey("sms"), (a,)))
    assert found.vendor_ids == (p, b, a)
    _, table = await routing.load_table(conn)
    assert found.vendor_ids == table.choose("sms", "79161234567", "25001")
    # A network given by hand is used as it is, the book not asked.
    given = await routing.trace(conn, "sms", "79261234567", "25001")
    assert (given.mccmnc, given.network, given.vendor_ids) == ("25001", None, (b, a))
    assert (await routing.trace(conn, "viber", "79161234567")).vendor_ids == ()
    unknown = await routing.trace(conn, "sms", "4915112345678")
    assert (unknown.mccmnc, unknown.levels, unknown.vendor_ids) == (None, (), ())
    with pytest.raises(Invalid):
        await routing.trace(conn, "sms", "79161234567", "2501")
