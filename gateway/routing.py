"""Routing: the vendors that carry a message, in failover order.

A route (table ``routes``, migration 0303) says "vendor V carries channel C
to destinations matching M, with priority P". M is one of, from the most
specific to the least:

1. a number prefix (E.164 digits): the longest matching prefix wins;
2. a network, MCC+MNC ("25001");
3. a country, MCC alone ("250");
4. nothing: the channel's default route.

:func:`choose` takes the most specific level that matches and orders its
vendors by priority (lower first, then route id); the vendors of the less
specific levels that also match follow as further fallbacks, so the default
route is always the last resort. A vendor appears once, at its first place.
The send queue walks this list (``gateway.queue.failover``).

Choosing is a pure function of a :class:`RoutingTable` built from the rows;
the SQL helpers load and edit the rows. Only enabled routes to enabled vendors
of the same channel are loaded.

Public API::

    Route(channel, vendor_id, priority=100, mccmnc=None, prefix=None, id=0)
    RoutingTable(routes).choose(channel, msisdn, mccmnc) -> tuple[int, ...]   # () = no route
    choose(table, channel, msisdn, mccmnc) -> tuple[int, ...]
    load_table(conn) -> tuple[int, RoutingTable]        # (revision, table)
    revision(conn) -> int
    add_route(conn, route) -> Route ; delete_route(conn, route_id) -> bool ; list_routes(conn)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import asyncpg

from config.errors import Conflict, Invalid

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    vendor_id: int
    priority: int = 100
    mccmnc: str | None = None
    prefix: str | None = None
    id: int = 0


def _order(routes: Iterable[Route]) -> tuple[int, ...]:
    return tuple(r.vendor_id for r in sorted(routes, key=lambda r: (r.priority, r.id)))


class RoutingTable:
    """The routes of every channel, indexed for :meth:`choose`."""

    __slots__ = ("_cache", "_defaults", "_networks", "_prefix_lengths", "_prefixes")

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        by_prefix: dict[tuple[str, str], list[Route]] = {}
        by_network: dict[tuple[str, str], list[Route]] = {}
        defaults: dict[str, list[Route]] = {}
        for r in routes:
            if r.prefix:
                by_prefix.setdefault((r.channel, r.prefix), []).append(r)
            elif r.mccmnc:
                by_network.setdefault((r.channel, r.mccmnc), []).append(r)
            else:
                defaults.setdefault(r.channel, []).append(r)
        self._prefixes = {k: _order(v) for k, v in by_prefix.items()}
        self._prefix_lengths = tuple(sorted({len(p) for _, p in by_prefix}, reverse=True))
        self._networks = {k: _order(v) for k, v in by_network.items()}
        self._defaults = {k: _order(v) for k, v in defaults.items()}
        # A batch sends to many numbers of the same few networks: remember answers.
        self._cache: dict[tuple[str, str, str], tuple[int, ...]] = {}

    def choose(self, channel: str, msisdn: str, mccmnc: str | None) -> tuple[int, ...]:
        """Vendor ids for a message to ``msisdn`` (E.164 digits) on ``mccmnc``; () when none."""
        if not self._prefix_lengths:
            key = (channel, "", mccmnc or "")
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        else:
            key = None
        levels: list[tuple[int, ...]] = []
        for n in self._prefix_lengths:
            found = self._prefixes.get((channel, msisdn[:n]))
            if found:
                levels.append(found)
                break  # only the longest prefix: shorter ones are the same kind of rule
        if mccmnc:
            if len(mccmnc) > 3:
                found = self._networks.get((channel, mccmnc))
                if found:
                    levels.append(found)
            found = self._networks.get((channel, mccmnc[:3]))
            if found:
                levels.append(found)
        found = self._defaults.get(channel)
        if found:
            levels.append(found)
        chosen = tuple(dict.fromkeys(v for level in levels for v in level))
        if key is not None and len(self._cache) < 100_000:
            self._cache[key] = chosen
        return chosen


def choose(table: RoutingTable, channel: str, msisdn: str, mccmnc: str | None) -> tuple[int, ...]:
    """:meth:`RoutingTable.choose` as a function."""
    return table.choose(channel, msisdn, mccmnc)


def check_route(route: Route) -> Route:
    """The route with its match normalised, or Invalid naming the broken rule."""
    if route.channel not in ("sms", "viber"):
        raise Invalid("channel must be sms or viber", field="channel")
    prefix = (route.prefix or "").lstrip("+") or None
    mccmnc = route.mccmnc or None
    if prefix and mccmnc:
        raise Invalid("a route matches a prefix or a network, not both", field="prefix")
    if prefix and not (prefix.isdigit() and len(prefix) <= 15):
        raise Invalid("a prefix is 1 to 15 digits", field="prefix")
    if mccmnc and not (mccmnc.isdigit() and len(mccmnc) in (3, 5, 6)):
        raise Invalid("an MCCMNC is 3 (country), 5 or 6 digits", field="mccmnc")
    return replace(route, prefix=prefix, mccmnc=mccmnc)


_LOAD = """
SELECT r.id, r.channel, r.vendor_id, r.priority, r.mccmnc, r.prefix
FROM routes r JOIN vendors v ON v.id = r.vendor_id
WHERE r.enabled AND v.enabled AND v.channel = r.channel
ORDER BY r.id"""


def _route(row: asyncpg.Record) -> Route:
    return Route(row["channel"], row["vendor_id"], row["priority"], row["mccmnc"], row["prefix"],
                 row["id"])


async def revision(conn: Conn) -> int:
    """Changes whenever a route or a vendor's availability changes."""
    return await conn.fetchval("SELECT revision FROM routing_state")


async def load_table(conn: Conn) -> tuple[int, RoutingTable]:
    """(revision, table) of the usable routes.

    The revision is read first: a change committed between the two reads makes
    the revision look older than the rows, which costs one extra reload later
    and never hides a change.
    """
    rev = await revision(conn)
    rows = await conn.fetch(_LOAD)
    return rev, RoutingTable(_route(r) for r in rows)


async def add_route(conn: Conn, route: Route) -> Route:
    """Store a route (system owner's admin panel); Conflict when it repeats one."""
    route = check_route(route)
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            return await add_route(c, route)
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
            row = await conn.fetchrow(
                """INSERT INTO routes (channel, vendor_id, priority, mccmnc, prefix)
                   VALUES ($1, $2, $3, $4, $5)
                   RETURNING id, channel, vendor_id, priority, mccmnc, prefix""",
                route.channel, route.vendor_id, route.priority, route.mccmnc, route.prefix,
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("this vendor already has this route", field="vendor_id") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise Invalid("no such vendor", field="vendor_id") from exc
    return _route(row)


async def delete_route(conn: Conn, route_id: int) -> bool:
    return await conn.execute("DELETE FROM routes WHERE id = $1", route_id) == "DELETE 1"


async def list_routes(conn: Conn) -> list[Route]:
    rows = await conn.fetch(
        "SELECT id, channel, vendor_id, priority, mccmnc, prefix FROM routes ORDER BY channel, id"
    )
    return [_route(r) for r in rows]
