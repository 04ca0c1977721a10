"""Routing: the pure choice, and the table as stored."""

from __future__ import annotations

import pytest

from config.errors import Conflict, Invalid
from gateway import routing
from gateway.routing import Route, RoutingTable


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
