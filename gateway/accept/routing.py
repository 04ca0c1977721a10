"""Routing: the vendors that carry a message, in failover order, and the rules the
Admin Panel edits (the levels and their order: ``gateway/accept/README.md``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import asyncpg

from accounts.tenancy import Scope, require_owner
from billing.refbook import Network, PrefixTable, default_entries
from config.errors import Conflict, Invalid, NotFound

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    vendor_id: int
    priority: int = 100
    mccmnc: str | None = None
    prefix: str | None = None
    id: int = 0


#: Kinds of match, most specific first (a network match is MCC+MNC, a country match MCC alone).
PREFIX, NETWORK, COUNTRY, DEFAULT = "prefix", "network", "country", "default"


@dataclass(frozen=True, slots=True)
class Level:
    """One level of a routing decision: what matched and its vendors by priority."""

    kind: str  # PREFIX, NETWORK, COUNTRY or DEFAULT
    match: str  # the prefix or MCC(MNC) that matched; "" for the default route
    vendor_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """Which levels matched a destination and the resulting failover order."""

    levels: tuple[Level, ...]
    vendor_ids: tuple[int, ...]  # what :func:`choose` answers


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
        chosen = _merge(self._levels(channel, msisdn, mccmnc))
        if key is not None and len(self._cache) < 100_000:
            self._cache[key] = chosen
        return chosen

    def explain(self, channel: str, msisdn: str, mccmnc: str | None) -> Decision:
        """:meth:`choose` with the levels that matched, most specific first."""
        levels = self._levels(channel, msisdn, mccmnc)
        return Decision(tuple(Level(*level) for level in levels), _merge(levels))

    def _levels(self, channel: str, msisdn: str,
                mccmnc: str | None) -> list[tuple[str, str, tuple[int, ...]]]:
        """(kind, match, vendor ids) of each matching level, most specific first."""
        levels: list[tuple[str, str, tuple[int, ...]]] = []
        for n in self._prefix_lengths:
            found = self._prefixes.get((channel, msisdn[:n]))
            if found:
                levels.append((PREFIX, msisdn[:n], found))
                break  # only the longest prefix: shorter ones are the same kind of rule
        if mccmnc:
            if len(mccmnc) > 3:
                found = self._networks.get((channel, mccmnc))
                if found:
                    levels.append((NETWORK, mccmnc, found))
            found = self._networks.get((channel, mccmnc[:3]))
            if found:
                levels.append((COUNTRY, mccmnc[:3], found))
        found = self._defaults.get(channel)
        if found:
            levels.append((DEFAULT, "", found))
        return levels


def _merge(levels: Iterable[tuple[str, str, tuple[int, ...]]]) -> tuple[int, ...]:
    """The levels' vendors in order, each vendor once at its first place."""
    return tuple(dict.fromkeys(v for _, _, level in levels for v in level))


def choose(table: RoutingTable, channel: str, msisdn: str, mccmnc: str | None) -> tuple[int, ...]:
    """:meth:`RoutingTable.choose` as a function."""
    return table.choose(channel, msisdn, mccmnc)


def explain(table: RoutingTable, channel: str, msisdn: str, mccmnc: str | None) -> Decision:
    """:meth:`RoutingTable.explain` as a function: the decision and how it was reached."""
    return table.explain(channel, msisdn, mccmnc)


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


# -- rules: what the Admin Panel edits --------------------------------------------------------

CHANNELS = ("sms", "viber")
_RANK = {DEFAULT: 0, COUNTRY: 1, NETWORK: 1, PREFIX: 2}  # list order: default, MCC(MNC), prefix


@dataclass(frozen=True, slots=True)
class RuleKey:
    """A channel and one match (a prefix, an MCC(MNC), or neither: the default route)."""

    channel: str
    mccmnc: str | None = None
    prefix: str | None = None

    @property
    def kind(self) -> str:
        if self.prefix:
            return PREFIX
        if self.mccmnc:
            return NETWORK if len(self.mccmnc) > 3 else COUNTRY
        return DEFAULT

    @property
    def match(self) -> str:
        return self.prefix or self.mccmnc or ""

    @property
    def slug(self) -> str:
        """URL form: ``sms-default``, ``sms-mccmnc-25001``, ``viber-prefix-7916``."""
        if self.prefix:
            return f"{self.channel}-prefix-{self.prefix}"
        if self.mccmnc:
            return f"{self.channel}-mccmnc-{self.mccmnc}"
        return f"{self.channel}-default"

    @property
    def field(self) -> str:
        """The form input a clash on this key is shown next to."""
        return "prefix" if self.prefix else "mccmnc" if self.mccmnc else "channel"


def check_key(key: RuleKey) -> RuleKey:
    """The key with its match normalised ("+7916" → "7916"); Invalid naming the broken rule."""
    route = check_route(Route(key.channel, 0, mccmnc=key.mccmnc, prefix=key.prefix))
    return RuleKey(route.channel, route.mccmnc, route.prefix)


def parse_slug(slug: str) -> RuleKey:
    """The key a :attr:`RuleKey.slug` names; NotFound for anything else (it comes from a URL)."""
    channel, _, rest = slug.partition("-")
    kind, _, value = rest.partition("-")
    try:
        if kind == "default" and not value:
            key = check_key(RuleKey(channel))
        elif kind in ("mccmnc", "prefix") and value.isdigit():
            key = check_key(RuleKey(channel, **{kind: value}))
        else:
            raise NotFound("no such route")
    except Invalid:
        raise NotFound("no such route") from None
    if key.slug != slug:
        raise NotFound("no such route")
    return key


@dataclass(frozen=True, slots=True)
class RuleVendor:
    id: int
    name: str
    usable: bool  # the vendor is enabled and carries the route's channel (else the pipeline skips it)


@dataclass(frozen=True, slots=True)
class Rule:
    """A route as the Admin Panel shows it: its key and its vendors in failover order."""

    key: RuleKey
    vendors: tuple[RuleVendor, ...]
    enabled: bool

    @property
    def sort_key(self) -> tuple[str, int, str]:
        """Keyset position in :func:`list_rules` order."""
        return (self.key.channel, _RANK[self.key.kind], self.key.match)


def check_vendor_order(channel: str, vendor_ids: Sequence[int],
                       channel_of: Mapping[int, str]) -> tuple[int, ...]:
    """The failover order if every vendor exists, carries ``channel`` and appears once.

    ``channel_of`` maps the known vendor ids to their channel. An Invalid names
    the position it refuses as field ``vendors.<index>``.
    """
    if not vendor_ids:
        raise Invalid("choose at least one vendor", field="vendors.0")
    seen: set[int] = set()
    for i, vendor_id in enumerate(vendor_ids):
        if vendor_id not in channel_of:
            raise Invalid("no such vendor", field=f"vendors.{i}")
        if channel_of[vendor_id] != channel:
            raise Invalid("this vendor carries another channel", field=f"vendors.{i}")
        if vendor_id in seen:
            raise Invalid("a vendor appears only once in the order", field=f"vendors.{i}")
        seen.add(vendor_id)
    return tuple(vendor_ids)


# One row per rule; the arrays follow the failover order (priority, then id, as _order does).
_RULES = """
SELECT r.channel, r.mccmnc, r.prefix,
       CASE WHEN r.prefix IS NOT NULL THEN 2 WHEN r.mccmnc IS NOT NULL THEN 1 ELSE 0 END AS rank,
       coalesce(r.prefix, r.mccmnc, '') AS match,
       array_agg(r.vendor_id ORDER BY r.priority, r.id) AS vendor_ids,
       array_agg(v.name ORDER BY r.priority, r.id) AS vendor_names,
       array_agg(v.enabled AND v.channel = r.channel ORDER BY r.priority, r.id) AS usable,
       bool_and(r.enabled) AS enabled
FROM routes r JOIN vendors v ON v.id = r.vendor_id
WHERE {where}
GROUP BY r.channel, r.mccmnc, r.prefix
{having}"""

_LIST = f"""
WITH rules AS ({_RULES.format(
    where="($1 = '' OR r.channel = $1)"
          " AND ($2 = '' OR r.prefix LIKE $2 || '%' OR r.mccmnc LIKE $2 || '%')",
    having="HAVING $3::bigint IS NULL OR bool_or(r.vendor_id = $3)")})
SELECT * FROM rules
WHERE $4::text IS NULL OR (channel, rank, match) {{op}} ($4, $5::int, $6::text)
ORDER BY channel {{dir}}, rank {{dir}}, match {{dir}}
LIMIT $7"""
_LIST_AFTER = _LIST.format(op=">", dir="ASC")
_LIST_BEFORE = _LIST.format(op="<", dir="DESC")

_GET = _RULES.format(
    where="r.channel = $1 AND r.mccmnc IS NOT DISTINCT FROM $2 AND r.prefix IS NOT DISTINCT FROM $3",
    having="")
_KEY_ROWS = "channel = $1 AND mccmnc IS NOT DISTINCT FROM $2 AND prefix IS NOT DISTINCT FROM $3"


def _rule(row: asyncpg.Record) -> Rule:
    vendors = tuple(RuleVendor(*v) for v in zip(row["vendor_ids"], row["vendor_names"], row["usable"],
                                                strict=True))
    return Rule(RuleKey(row["channel"], row["mccmnc"], row["prefix"]), vendors, row["enabled"])


async def list_rules(
    conn: Conn, scope: Scope, *, channel: str = "", match: str = "", vendor_id: int | None = None,
    after: tuple[str, int, str] | None = None, before: tuple[str, int, str] | None = None,
    limit: int = 25,
) -> list[Rule]:
    """Up to ``limit`` rules in (channel, default/MCC(MNC)/prefix, match) order, filtered in SQL.

    ``match`` keeps rules whose prefix or MCC(MNC) starts with it ("250" finds
    250, 25001 and a prefix 250…); ``vendor_id`` keeps rules that use the
    vendor anywhere in their order. Keyset pages: rules after (or before) a
    :attr:`Rule.sort_key`, always returned in display order.
    """
    require_owner(scope)
    channel = channel if channel in CHANNELS else ""
    match = match.strip().lstrip("+").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if before is not None:
        rows = await conn.fetch(_LIST_BEFORE, channel, match, vendor_id, *before, limit)
        rows = list(reversed(rows))
    else:
        rows = await conn.fetch(_LIST_AFTER, channel, match, vendor_id, *(after or (None, 0, "")), limit)
    return [_rule(r) for r in rows]


async def get_rule(conn: Conn, scope: Scope, key: RuleKey) -> Rule:
    """The rule with this key; NotFound when no route has it."""
    require_owner(scope)
    row = await conn.fetchrow(_GET, key.channel, key.mccmnc, key.prefix)
    if row is None:
        raise NotFound("no such route")
    return _rule(row)


async def save_rule(conn: asyncpg.Connection, scope: Scope, key: RuleKey, vendor_ids: Sequence[int], *,
                    enabled: bool = True, replaces: RuleKey | None = None) -> Rule:
    """Create the rule ``key`` (``replaces`` None) or rewrite the rule ``replaces`` as ``key``.

    The vendors get priorities 10, 20, … in the order given. Conflict when
    another rule already has ``key``; NotFound when ``replaces`` is gone.
    """
    require_owner(scope)
    key = check_key(key)
    async with conn.transaction():
        # Route edits take turns (this row is also what the routes trigger bumps), so the
        # "is this key free" check below still holds when the rows are written.
        await conn.execute("SELECT revision FROM routing_state FOR UPDATE")
        rows = await conn.fetch("SELECT id, channel FROM vendors WHERE id = ANY($1::bigint[])",
                                list(vendor_ids))
        ids = check_vendor_order(key.channel, vendor_ids, {r["id"]: r["channel"] for r in rows})
        if replaces != key and await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM routes WHERE {_KEY_ROWS})", key.channel, key.mccmnc, key.prefix):
            raise Conflict("a route for this channel and match exists; edit that one", field=key.field)
        if replaces is not None:
            removed = await conn.execute(f"DELETE FROM routes WHERE {_KEY_ROWS}",
                                         replaces.channel, replaces.mccmnc, replaces.prefix)
            if removed == "DELETE 0":
                raise NotFound("no such route")
        try:
            await conn.execute(
                """INSERT INTO routes (channel, mccmnc, prefix, vendor_id, priority, enabled)
                   SELECT $1, $2, $3, v.id, v.n * 10, $5
                   FROM unnest($4::bigint[]) WITH ORDINALITY AS v (id, n)""",
                key.channel, key.mccmnc, key.prefix, list(ids), enabled,
            )
        except asyncpg.ForeignKeyViolationError as exc:  # a vendor deleted meanwhile
            raise Invalid("no such vendor", field="vendors.0") from exc
        return await get_rule(conn, scope, key)


async def delete_rule(conn: Conn, scope: Scope, key: RuleKey) -> None:
    """Remove every route row of the rule; NotFound when there is none."""
    require_owner(scope)
    if await conn.execute(f"DELETE FROM routes WHERE {_KEY_ROWS}",
                          key.channel, key.mccmnc, key.prefix) == "DELETE 0":
        raise NotFound("no such route")


async def destination_network(conn: Conn, msisdn: str) -> Network | None:
    """The reference book's network for ``msisdn``, as the pipeline finds it (longest prefix).

    The pipeline holds the book in memory; one indexed query over the
    number's leading digits gives the same answer without loading it. Like
    the pipeline, an empty book falls back to the world table built from
    phonenumbers (slow to build: the Admin Panel asks this one number at a time).
    """
    heads = [msisdn[:n] for n in range(1, len(msisdn) + 1)]
    row = await conn.fetchrow(
        """SELECT prefix, mcc, mnc, country, network FROM number_prefixes
           WHERE prefix = ANY($1::text[]) ORDER BY length(prefix) DESC LIMIT 1""", heads)
    if row is not None:
        return Network(row["prefix"], row["mcc"], row["mnc"], row["country"], row["network"])
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM number_prefixes)"):
        return None
    world = await asyncio.to_thread(lambda: PrefixTable(default_entries()))
    return world.lookup(msisdn)


@dataclass(frozen=True, slots=True)
class Trace:
    """How a message to one number would be routed now (the Admin Panel's "test a number")."""

    msisdn: str
    mccmnc: str | None             # None: the reference book knows no network for the number
    network: Network | None        # the book's entry, when the network was looked up
    levels: tuple[tuple[RuleKey, tuple[int, ...]], ...]  # the rules that matched, most specific first
    vendor_ids: tuple[int, ...]    # the failover order the pipeline would use (): refused


async def trace(conn: Conn, channel: str, msisdn: str, mccmnc: str | None = None) -> Trace:
    """Route a message to ``msisdn`` (E.164 digits) on ``channel`` as the pipeline would,
    on the routes stored now: on ``mccmnc`` when given (Invalid when it is not one), else
    on the network the reference book gives for the number."""
    network = None
    if mccmnc:
        mccmnc = check_key(RuleKey(channel, mccmnc=mccmnc)).mccmnc
    else:
        network = await destination_network(conn, msisdn)
        if network is None:
            return Trace(msisdn, None, None, (), ())
        mccmnc = network.mccmnc
    _, table = await load_table(conn)
    decision = table.explain(channel, msisdn, mccmnc)
    levels = tuple(
        (RuleKey(channel, prefix=level.match) if level.kind == PREFIX
         else RuleKey(channel, mccmnc=level.match or None), level.vendor_ids)
        for level in decision.levels)
    return Trace(msisdn, mccmnc, network, levels, decision.vendor_ids)
