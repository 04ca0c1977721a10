"""Short links and their codes: making them (the campaigns' hook), finding, archiving, purging.

A link belongs to a partner and, when a campaign made it, to that campaign:
one link per campaign and domain, so the SMS and Viber channels of a cascade
that ask twice get the same link. Its codes are one shared code, or one code
per recipient (phone number) for per-recipient links; a recipient asked for
again gets the same code. Archived links answer 404 and are deleted 30 days
after they were archived (:func:`purge_archived`, run by housekeeping).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from accounts.tenancy import Conn
from config.errors import Conflict, Invalid, NotFound
from shortener import codes, domains
from shortener.urls import validate_original_url

ARCHIVE_DAYS = 30
_ROUNDS = 8  # draws before giving up on collisions (each round draws only what collided)


@dataclass(frozen=True, slots=True)
class ShortLink:
    id: int
    domain_id: int
    host: str
    partner_id: int
    user_id: int | None
    campaign_id: int | None
    name: str
    original_url: str
    per_recipient: bool
    code: str | None  # the shared code (None for per-recipient links)
    clicks: int
    bot_clicks: int
    created_at: datetime
    expires_at: datetime | None
    archived_at: datetime | None

    @property
    def url(self) -> str | None:
        """The short link written in every message, or None when each recipient has their own."""
        return codes.short_url(self.host, self.code) if self.code else None

    @property
    def archive_ends(self) -> datetime | None:
        return self.archived_at + timedelta(days=ARCHIVE_DAYS) if self.archived_at else None


_COLUMNS = """l.id, l.domain_id, d.host, l.partner_id, l.user_id, l.campaign_id, l.name, l.original_url,
    l.per_recipient, (SELECT c.code FROM short_codes c WHERE c.link_id = l.id AND c.recipient IS NULL) AS code,
    l.clicks, l.bot_clicks, l.created_at, l.expires_at, l.archived_at"""


def _link(row: asyncpg.Record) -> ShortLink:
    return ShortLink(**dict(row))


_BY_ID = f"SELECT {_COLUMNS} FROM short_links l JOIN short_domains d ON d.id = l.domain_id WHERE l.id = $1"
_BY_CAMPAIGN = f"""SELECT {_COLUMNS} FROM short_links l JOIN short_domains d ON d.id = l.domain_id
WHERE l.campaign_id = $1 AND l.domain_id = $2"""
_INSERT = """INSERT INTO short_links (domain_id, partner_id, user_id, campaign_id, name, original_url,
    per_recipient, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (campaign_id, domain_id) WHERE campaign_id IS NOT NULL DO NOTHING
RETURNING id"""
_SHARED = """INSERT INTO short_codes (link_id, domain_id, code) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING code"""


async def create_link(
    conn: asyncpg.Connection, *, partner_id: int, domain_id: int, original_url: str,
    campaign_id: int | None = None, name: str = "", user_id: int | None = None,
    per_recipient: bool = False, expires_at: datetime | None = None,
) -> ShortLink:
    """The short link of ``original_url`` on a domain the partner (user) may use.

    Idempotent per campaign and domain: asked again with the same URL, the same
    link comes back; with another URL, :class:`Conflict`. Refused URLs and
    domains raise :class:`Invalid` naming the field (``original_url``,
    ``short_domain``).
    """
    if not await domains.may_use(conn, domain_id, partner_id, user_id):
        raise Invalid("This short domain is not available to you.", field="short_domain")
    hosts = {r["host"] for r in await conn.fetch("SELECT host FROM short_domains")}
    url = validate_original_url(original_url, hosts)
    async with conn.transaction():
        link_id = await conn.fetchval(_INSERT, domain_id, partner_id, user_id, campaign_id,
                                      name.strip()[:200], url, per_recipient, expires_at)
        if link_id is None:  # the campaign has its link on this domain already
            existing = _link(await conn.fetchrow(_BY_CAMPAIGN, campaign_id, domain_id))
            if existing.original_url != url or existing.per_recipient != per_recipient:
                raise Conflict("This campaign already has another link on this short domain.",
                               field="original_url")
            return existing
        if not per_recipient:
            for _ in range(_ROUNDS):
                if await conn.fetchval(_SHARED, link_id, domain_id, codes.new_code()):
                    break
            else:
                raise RuntimeError("no free short code after several draws")
        return _link(await conn.fetchrow(_BY_ID, link_id))


_EXISTING = """SELECT recipient, code FROM short_codes WHERE link_id = $1 AND recipient = ANY($2::text[])"""
_PER_RECIPIENT = """INSERT INTO short_codes (link_id, domain_id, recipient, code)
SELECT $1, $2, r, c FROM unnest($3::text[], $4::text[]) AS v(r, c)
ON CONFLICT DO NOTHING RETURNING recipient, code"""


async def recipient_codes(conn: Conn, link: ShortLink, recipients: Iterable[str]) -> dict[str, str]:
    """Each recipient's own code on a per-recipient link (made once, then the same)."""
    if not link.per_recipient:
        raise Invalid("This link has one code for every recipient.")
    wanted = list(dict.fromkeys(r for r in recipients if r))
    found: dict[str, str] = {}
    for _ in range(_ROUNDS):
        missing = [r for r in wanted if r not in found]
        if not missing:
            return found
        found.update((r["recipient"], r["code"]) for r in await conn.fetch(_EXISTING, link.id, missing))
        missing = [r for r in missing if r not in found]
        if not missing:
            return found
        # Collisions (a code taken, or a recipient another process just did) are skipped;
        # the next round reads the latter and draws again for the former.
        rows = await conn.fetch(_PER_RECIPIENT, link.id, link.domain_id, missing,
                                codes.new_codes(len(missing)))
        found.update((r["recipient"], r["code"]) for r in rows)
    if any(r not in found for r in wanted):
        raise RuntimeError("no free short code after several draws")
    return found


async def recipient_links(conn: Conn, link: ShortLink, recipients: Iterable[str]) -> dict[str, str]:
    """Each recipient's short link (``https://host/code``) on a per-recipient link."""
    return {r: codes.short_url(link.host, c) for r, c in (await recipient_codes(conn, link, recipients)).items()}


_ATTACH = """UPDATE short_codes c SET message_id = v.m
FROM unnest($2::text[], $3::uuid[]) AS v(r, m)
WHERE c.link_id = $1 AND c.recipient = v.r"""


async def attach_messages(conn: Conn, link_id: int, sent: Sequence[tuple[str, UUID]]) -> int:
    """Record the message (EDR id) each recipient's code went out in; returns codes updated."""
    if not sent:
        return 0
    done = await conn.execute(_ATTACH, link_id, [r for r, _ in sent], [m for _, m in sent])
    return int(done.split()[-1])


async def get_link(conn: Conn, partner_id: int, link_id: int) -> ShortLink:
    """A link of the partner; NotFound for other partners' links, as for missing ones."""
    row = await conn.fetchrow(_BY_ID + " AND l.partner_id = $2", link_id, partner_id)
    if row is None:
        raise NotFound("no such short link")
    return _link(row)


async def link_for_campaign(conn: Conn, campaign_id: int, domain_id: int) -> ShortLink | None:
    row = await conn.fetchrow(_BY_CAMPAIGN, campaign_id, domain_id)
    return _link(row) if row else None


@dataclass(frozen=True, slots=True)
class Target:
    """What a code leads to, as the redirect service needs it."""

    code_id: int
    link_id: int
    url: str
    portal_id: int
    archived: bool
    expires_at: datetime | None


_TARGET = """SELECT c.id AS code_id, l.id AS link_id, l.original_url AS url, p.portal_id,
    l.archived_at IS NOT NULL AS archived, l.expires_at
FROM short_codes c JOIN short_links l ON l.id = c.link_id JOIN partners p ON p.id = l.partner_id
WHERE c.domain_id = $1 AND c.code = $2"""


async def find_target(conn: Conn, domain_id: int, code: str) -> Target | None:
    row = await conn.fetchrow(_TARGET, domain_id, code)
    return Target(**dict(row)) if row else None


_ARCHIVE = """UPDATE short_links SET archived_at = now()
WHERE partner_id = $1 AND id = ANY($2::bigint[]) AND archived_at IS NULL"""
_ARCHIVE_DOMAIN = """UPDATE short_links SET archived_at = now()
WHERE partner_id = $1 AND domain_id = $2 AND archived_at IS NULL"""


async def archive_links(conn: Conn, partner_id: int, link_ids: Sequence[int]) -> int:
    """Move the partner's links to the archive (they answer 404 from now on); returns how many."""
    done = await conn.execute(_ARCHIVE, partner_id, list(link_ids))
    return int(done.split()[-1])


async def archive_domain(conn: Conn, partner_id: int, domain_id: int) -> int:
    """Archive every active link the partner has on a domain."""
    done = await conn.execute(_ARCHIVE_DOMAIN, partner_id, domain_id)
    return int(done.split()[-1])


_PURGE = """DELETE FROM short_links WHERE id IN (
    SELECT id FROM short_links WHERE archived_at < $1 ORDER BY archived_at LIMIT $2)"""


async def purge_archived(conn: Conn, now: datetime, *, days: int = ARCHIVE_DAYS, batch: int = 500) -> int:
    """Delete links archived more than ``days`` ago, with their codes and clicks; returns how many.

    Decided from ``archived_at`` alone, so a restart loses nothing: the next run
    deletes what fell due meanwhile. Batches keep each transaction short.
    """
    cutoff = now - timedelta(days=days)
    total = 0
    while True:
        done = int((await conn.execute(_PURGE, cutoff, batch)).split()[-1])
        total += done
        if done < batch:
            return total


@dataclass(frozen=True, slots=True)
class DomainNode:
    """A short domain in the URL Shortener's tree, with the partner's links on it."""

    id: int
    host: str
    enabled: bool
    created_at: datetime
    links: tuple[ShortLink, ...]

    @property
    def clicks(self) -> int:
        return sum(link.clicks for link in self.links)


_TREE = f"""SELECT {_COLUMNS} FROM short_links l JOIN short_domains d ON d.id = l.domain_id
WHERE l.partner_id = $1 AND (l.archived_at IS NOT NULL) = $2
ORDER BY CASE WHEN $2 THEN l.archived_at ELSE l.created_at END DESC, l.id DESC
LIMIT $3"""
_DOMAINS = "SELECT id, host, enabled, created_at FROM short_domains WHERE id = ANY($1::bigint[])"


async def partner_tree(conn: Conn, partner_id: int, user_id: int | None, *, archived: bool,
                       query: str = "", limit: int = 2000) -> list[DomainNode]:
    """Domains → links of a partner: active links (under every domain the user may use too),
    newest first, or archived ones, latest archived first; ``query`` filters domains and
    links by name (a matching domain keeps all its links)."""
    links = [_link(r) for r in await conn.fetch(_TREE, partner_id, archived, limit)]
    ids = {link.domain_id for link in links}
    if not archived and user_id is not None:
        ids.update(d.id for d in await domains.usable_domains(conn, user_id))
    rows = {r["id"]: r for r in await conn.fetch(_DOMAINS, sorted(ids))}
    needle = query.strip().lower()
    tree = []
    for domain_id in sorted(rows, key=lambda i: rows[i]["host"]):
        row = rows[domain_id]
        own = [link for link in links if link.domain_id == domain_id]
        if needle and needle not in row["host"]:
            own = [link for link in own if needle in link.name.lower()]
            if not own:
                continue
        tree.append(DomainNode(row["id"], row["host"], row["enabled"], row["created_at"], tuple(own)))
    return tree


async def partner_links(conn: Conn, partner_id: int, domain_id: int, *, archived: bool) -> list[int]:
    """Ids of the partner's links on a domain (active or archived): a domain's statistics and report."""
    rows = await conn.fetch(
        "SELECT id FROM short_links WHERE partner_id = $1 AND domain_id = $2 AND (archived_at IS NOT NULL) = $3",
        partner_id, domain_id, archived)
    return [r["id"] for r in rows]


@dataclass(frozen=True, slots=True)
class Shortened:
    """What :func:`shorten` gives the campaign: the link, and the text each message carries."""

    link: ShortLink
    url: str | None  # the short link of every message (None with per-recipient links)
    by_recipient: dict[str, str]  # recipient → their own short link (per-recipient links)

    def for_recipient(self, recipient: str) -> str:
        """The short link to write in this recipient's message."""
        return self.by_recipient[recipient] if self.link.per_recipient else self.url  # type: ignore[return-value]


async def shorten(
    conn: asyncpg.Connection, *, partner_id: int, domain_id: int, original_url: str,
    campaign_id: int | None = None, name: str = "", user_id: int | None = None,
    per_recipient: bool = False, recipients: Iterable[str] = (), expires_at: datetime | None = None,
) -> Shortened:
    """The campaigns' hook in one call: :func:`create_link`, then each recipient's code.

    Call it again with more recipients (a large campaign in chunks, the SMS
    part of a cascade): the link and the codes already made come back the same.
    """
    link = await create_link(conn, partner_id=partner_id, domain_id=domain_id, original_url=original_url,
                             campaign_id=campaign_id, name=name, user_id=user_id,
                             per_recipient=per_recipient, expires_at=expires_at)
    by_recipient = await recipient_links(conn, link, recipients) if per_recipient else {}
    return Shortened(link, link.url, by_recipient)
