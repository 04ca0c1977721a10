"""Short domains and who may use them (the system owner's Admin Panel screen).

A short domain is a host name the operator points at Herald (DNS and TLS are
the operator's). It is granted to every user of a portal, to a partner (its
users and those of the partners below it), or to one user; a user may shorten
with the enabled domains granted to them in any of these ways
(:func:`usable_domains`). Only the system owner manages domains; a domain's
host cannot change once made (links already sent carry it), and a domain
that has links cannot be deleted, only switched off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from accounts.tenancy import Conn, Scope, require_owner
from config.errors import Conflict, Invalid, NotFound
from shortener.urls import ascii_host

GrantKind = Literal["portal", "partner", "user"]
FIELD = "host"


@dataclass(frozen=True, slots=True)
class ShortDomain:
    id: int
    host: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DomainSummary:
    domain: ShortDomain
    grants: int
    links: int


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    kind: GrantKind
    target_id: int
    label: str  # portal name (host), partner name, or user e-mail
    created_at: datetime


_COLUMNS = "d.id, d.host, d.enabled, d.created_at"


def _domain(row: asyncpg.Record) -> ShortDomain:
    return ShortDomain(row["id"], row["host"], row["enabled"], row["created_at"])


def normalise_domain(host: str) -> str:
    """A short domain as stored: lower-case ASCII host name with at least one dot; Invalid otherwise."""
    text = (host or "").strip()
    if "://" in text or "/" in text or ":" in text or "@" in text:
        raise Invalid("Enter a host name only, such as go.example.com.", field=FIELD)
    try:
        normal = ascii_host(text)
    except ValueError:
        raise Invalid("Enter a valid host name, such as go.example.com.", field=FIELD) from None
    if "." not in normal or normal.replace(".", "").isdigit() or "_" in normal:
        raise Invalid("Enter a valid host name, such as go.example.com.", field=FIELD)
    return normal


_INSERT = f"""INSERT INTO short_domains AS d (host, enabled) VALUES ($1, $2)
ON CONFLICT (host) DO NOTHING RETURNING {_COLUMNS}"""
_PORTAL_HOST = "SELECT 1 FROM portals WHERE lower(host) = $1"


async def create_domain(conn: asyncpg.Connection, scope: Scope, host: str, *, enabled: bool = True) -> ShortDomain:
    """A new short domain (system owner only); Conflict when the host is taken."""
    require_owner(scope)
    normal = normalise_domain(host)
    if await conn.fetchval(_PORTAL_HOST, normal):
        raise Conflict("A portal already uses this host name.", field=FIELD)
    row = await conn.fetchrow(_INSERT, normal, enabled)
    if row is None:
        raise Conflict("This short domain exists already.", field=FIELD)
    return _domain(row)


async def get_domain(conn: Conn, scope: Scope, domain_id: int) -> ShortDomain:
    require_owner(scope)
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM short_domains d WHERE d.id = $1", domain_id)
    if row is None:
        raise NotFound("no such short domain")
    return _domain(row)


_LIST = f"""SELECT {_COLUMNS},
    (SELECT count(*) FROM short_domain_grants g WHERE g.domain_id = d.id) AS grants,
    (SELECT count(*) FROM short_links l WHERE l.domain_id = d.id) AS links
FROM short_domains d ORDER BY d.host"""


async def list_domains(conn: Conn, scope: Scope) -> list[DomainSummary]:
    require_owner(scope)
    return [DomainSummary(_domain(r), r["grants"], r["links"]) for r in await conn.fetch(_LIST)]


async def set_enabled(conn: Conn, scope: Scope, domain_id: int, enabled: bool) -> ShortDomain:
    require_owner(scope)
    row = await conn.fetchrow(
        f"UPDATE short_domains d SET enabled = $2 WHERE d.id = $1 RETURNING {_COLUMNS}", domain_id, enabled)
    if row is None:
        raise NotFound("no such short domain")
    return _domain(row)


async def delete_domain(conn: Conn, scope: Scope, domain_id: int) -> None:
    """Delete a domain without links; Conflict when links use it (switch it off instead)."""
    require_owner(scope)
    if await conn.fetchval("SELECT 1 FROM short_links WHERE domain_id = $1 LIMIT 1", domain_id):
        raise Conflict("Links were made on this domain: switch it off instead of deleting it.")
    done = await conn.execute("DELETE FROM short_domains WHERE id = $1", domain_id)
    if done.endswith(" 0"):
        raise NotFound("no such short domain")


_GRANTS = """SELECT g.id, g.created_at,
    CASE WHEN g.portal_id IS NOT NULL THEN 'portal' WHEN g.partner_id IS NOT NULL THEN 'partner' ELSE 'user' END AS kind,
    coalesce(g.portal_id, g.partner_id, g.user_id) AS target_id,
    coalesce(t.name || ' (' || t.host || ')', p.name, u.email) AS label
FROM short_domain_grants g
LEFT JOIN portals t ON t.id = g.portal_id
LEFT JOIN partners p ON p.id = g.partner_id
LEFT JOIN users u ON u.id = g.user_id
WHERE g.domain_id = $1
ORDER BY kind, label, g.id"""


async def list_grants(conn: Conn, scope: Scope, domain_id: int) -> list[Grant]:
    await get_domain(conn, scope, domain_id)
    return [Grant(r["id"], r["kind"], r["target_id"], r["label"], r["created_at"])
            for r in await conn.fetch(_GRANTS, domain_id)]


_TARGETS = {
    "portal": "SELECT 1 FROM portals WHERE id = $1",
    "partner": "SELECT 1 FROM partners WHERE id = $1",
    "user": "SELECT 1 FROM users WHERE id = $1",
}
_GRANT = """INSERT INTO short_domain_grants (domain_id, portal_id, partner_id, user_id)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"""


async def add_grant(conn: Conn, scope: Scope, domain_id: int, kind: GrantKind, target_id: int) -> None:
    """Let a portal's users, a partner's (subtree's) users or one user shorten with the domain."""
    await get_domain(conn, scope, domain_id)
    if kind not in _TARGETS:
        raise Invalid("Choose a portal, a partner or a user.")
    if not await conn.fetchval(_TARGETS[kind], target_id):
        raise NotFound("This portal, partner or user does not exist.", field="target")
    ids = [target_id if kind == k else None for k in ("portal", "partner", "user")]
    await conn.execute(_GRANT, domain_id, *ids)


async def remove_grant(conn: Conn, scope: Scope, domain_id: int, grant_id: int) -> None:
    await get_domain(conn, scope, domain_id)
    done = await conn.execute("DELETE FROM short_domain_grants WHERE id = $2 AND domain_id = $1",
                              domain_id, grant_id)
    if done.endswith(" 0"):
        raise NotFound("no such grant")


# A domain granted to user u (of partner p): to the user, to their portal, or to a
# partner on p's path (p itself or one above it). Shared by the queries below and
# the account's "has the URL Shortener" flag.
GRANTED_TO_USER = """EXISTS (SELECT 1 FROM short_domain_grants g
    WHERE g.domain_id = d.id
      AND (g.user_id = u.id OR g.portal_id = u.portal_id OR g.partner_id = ANY(p.path)))"""

_USABLE = f"""SELECT {_COLUMNS} FROM short_domains d, users u JOIN partners p ON p.id = u.partner_id
WHERE u.id = $1 AND d.enabled AND {GRANTED_TO_USER}
ORDER BY d.host"""

# SQL expression over users u and partners p: whether the user sees the URL Shortener
# (an enabled domain granted, or short links of the partner to look at).
HAS_SHORTENER = f"""(EXISTS (SELECT 1 FROM short_domains d WHERE d.enabled AND {GRANTED_TO_USER})
    OR EXISTS (SELECT 1 FROM short_links l WHERE l.partner_id = u.partner_id))"""


async def usable_domains(conn: Conn, user_id: int) -> list[ShortDomain]:
    """The enabled domains a user may shorten links with (the wizard's list)."""
    return [_domain(r) for r in await conn.fetch(_USABLE, user_id)]


_USABLE_BY_PARTNER = """SELECT 1 FROM short_domains d JOIN partners p ON p.id = $2
WHERE d.id = $1 AND d.enabled AND EXISTS (
    SELECT 1 FROM short_domain_grants g
    WHERE g.domain_id = d.id AND (g.portal_id = p.portal_id OR g.partner_id = ANY(p.path)
        OR g.user_id IN (SELECT id FROM users WHERE partner_id = p.id)))"""


async def may_use(conn: Conn, domain_id: int, partner_id: int, user_id: int | None = None) -> bool:
    """Whether the partner (that user of it, when given) may shorten with the domain."""
    if user_id is not None:
        row = await conn.fetchval(
            f"SELECT 1 FROM short_domains d, users u JOIN partners p ON p.id = u.partner_id "
            f"WHERE d.id = $1 AND u.id = $2 AND u.partner_id = $3 AND d.enabled AND {GRANTED_TO_USER}",
            domain_id, user_id, partner_id)
        return bool(row)
    return bool(await conn.fetchval(_USABLE_BY_PARTNER, domain_id, partner_id))


async def all_hosts(conn: Conn) -> dict[str, tuple[int, bool, int | None]]:
    """Every short domain: host → (id, enabled, brand portal: the first portal granted)."""
    rows = await conn.fetch(
        """SELECT d.host, d.id, d.enabled,
                  (SELECT min(g.portal_id) FROM short_domain_grants g WHERE g.domain_id = d.id) AS portal_id
           FROM short_domains d""")
    return {r["host"]: (r["id"], r["enabled"], r["portal_id"]) for r in rows}


@dataclass(frozen=True, slots=True)
class Brand:
    """What a short domain's 404 page borrows from a portal (the default portal when None)."""

    name: str
    logo_url: str
    primary_color: str
    support_email: str
    languages: tuple[str, ...]
    default_language: str


_BRAND = """SELECT name, logo_url, primary_color, support_email, languages, default_language FROM portals
WHERE id = $1 OR ($1::bigint IS NULL AND is_default) OR is_default
ORDER BY (id = $1) DESC NULLS LAST, id LIMIT 1"""


async def brand(conn: Conn, portal_id: int | None) -> Brand | None:
    row = await conn.fetchrow(_BRAND, portal_id)
    if row is None:
        return None
    return Brand(row["name"], row["logo_url"], row["primary_color"], row["support_email"],
                 tuple(row["languages"]), row["default_language"])


async def users_with_email(conn: Conn, scope: Scope, email: str) -> list[int]:
    """Ids of the users with this e-mail (one per portal at most), for a grant to a user."""
    require_owner(scope)
    rows = await conn.fetch("SELECT id FROM users WHERE lower(email) = lower($1) ORDER BY id", email.strip())
    return [r["id"] for r in rows]
