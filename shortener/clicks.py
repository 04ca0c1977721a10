"""Clicks: the batch the click writer stores, and what the screens and reports read.

Every figure shown to users counts people only; bots and link previewers are
stored too (``bot``), counted apart. Reads are scoped to a partner (``$1``) so
that another tenant's link ids give nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from accounts.tenancy import Conn

# One statement: the clicks go in, and each code's and link's counters move with
# them, so a batch is stored whole or not at all. Clicks of a code deleted since
# (its link purged from the archive) are dropped by the join.
_WRITE = """
WITH v AS (
    SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::boolean[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[])
        AS v(code_id, clicked_at, bot, os, browser, device, referrer, country, user_agent)
), k AS (
    SELECT v.*, c.link_id FROM v JOIN short_codes c ON c.id = v.code_id
), stored AS (
    INSERT INTO short_clicks (link_id, code_id, clicked_at, bot, os, browser, device, referrer,
                              country, user_agent)
    SELECT link_id, code_id, clicked_at, bot, os, browser, device, referrer, country, user_agent FROM k
), per_code AS (
    UPDATE short_codes c SET clicks = c.clicks + a.people, bot_clicks = c.bot_clicks + a.bots,
        first_click_at = least(c.first_click_at, a.first_person),
        last_click_at = greatest(c.last_click_at, a.last_person)
    FROM (SELECT code_id, count(*) FILTER (WHERE NOT bot) AS people, count(*) FILTER (WHERE bot) AS bots,
                 min(clicked_at) FILTER (WHERE NOT bot) AS first_person,
                 max(clicked_at) FILTER (WHERE NOT bot) AS last_person
          FROM k GROUP BY code_id) a
    WHERE c.id = a.code_id
), per_link AS (
    UPDATE short_links l SET clicks = l.clicks + a.people, bot_clicks = l.bot_clicks + a.bots
    FROM (SELECT link_id, count(*) FILTER (WHERE NOT bot) AS people, count(*) FILTER (WHERE bot) AS bots
          FROM k GROUP BY link_id) a
    WHERE l.id = a.link_id
)
SELECT count(*) FROM k"""


@dataclass(frozen=True, slots=True)
class Click:
    """One click, ready to store (user agent already classified)."""

    code_id: int
    clicked_at: datetime
    bot: bool
    os: str
    browser: str
    device: str
    referrer: str = ""
    country: str = ""
    user_agent: str = ""


async def write_batch(conn: Conn, clicks: Sequence[Click]) -> int:
    """Store clicks and move their counters, in one statement; returns clicks stored."""
    if not clicks:
        return 0
    columns = list(zip(*((c.code_id, c.clicked_at, c.bot, c.os, c.browser, c.device, c.referrer,
                          c.country, c.user_agent) for c in clicks), strict=True))
    return await conn.fetchval(_WRITE, *(list(col) for col in columns))


_UNITS = ("hour", "day", "month")
_TIMELINE = """SELECT date_trunc($4, k.clicked_at, 'UTC') AS bucket, count(*) AS clicks
FROM short_clicks k JOIN short_links l ON l.id = k.link_id
WHERE l.partner_id = $1 AND k.link_id = ANY($2::bigint[]) AND NOT k.bot
  AND ($3::timestamptz IS NULL OR k.clicked_at >= $3)
GROUP BY 1 ORDER BY 1"""


async def timeline(conn: Conn, partner_id: int, link_ids: Sequence[int], since: datetime | None,
                   unit: str) -> dict[datetime, int]:
    """People's clicks per ``unit`` (hour, day, month; UTC) since ``since`` (None: all)."""
    if unit not in _UNITS:
        raise ValueError(unit)
    rows = await conn.fetch(_TIMELINE, partner_id, list(link_ids), since, unit)
    return {r["bucket"]: r["clicks"] for r in rows}


_BREAKDOWN = """SELECT k.{column} AS name, count(*) AS clicks
FROM short_clicks k JOIN short_links l ON l.id = k.link_id
WHERE l.partner_id = $1 AND k.link_id = ANY($2::bigint[]) AND NOT k.bot
  AND ($3::timestamptz IS NULL OR k.clicked_at >= $3)
GROUP BY 1 ORDER BY 2 DESC, 1"""
_BREAKDOWNS = {column: _BREAKDOWN.format(column=column) for column in ("os", "browser")}


async def breakdown(conn: Conn, partner_id: int, link_ids: Sequence[int], since: datetime | None,
                    column: str) -> list[tuple[str, int]]:
    """People's clicks by ``os`` or ``browser``, most first."""
    rows = await conn.fetch(_BREAKDOWNS[column], partner_id, list(link_ids), since)
    return [(r["name"], r["clicks"]) for r in rows]


_TOTALS = """SELECT count(*) FILTER (WHERE NOT k.bot) AS people, count(*) FILTER (WHERE k.bot) AS bots,
    min(k.clicked_at) FILTER (WHERE NOT k.bot) AS first_click
FROM short_clicks k JOIN short_links l ON l.id = k.link_id
WHERE l.partner_id = $1 AND k.link_id = ANY($2::bigint[])
  AND ($3::timestamptz IS NULL OR k.clicked_at >= $3)"""


@dataclass(frozen=True, slots=True)
class Totals:
    people: int
    bots: int
    first_click: datetime | None


async def totals(conn: Conn, partner_id: int, link_ids: Sequence[int], since: datetime | None) -> Totals:
    row = await conn.fetchrow(_TOTALS, partner_id, list(link_ids), since)
    return Totals(row["people"], row["bots"], row["first_click"])


REPORT_SQL = """SELECT k.id, k.clicked_at, d.host, c.code, l.name, l.campaign_id, l.original_url,
    c.recipient, c.message_id, k.os, k.browser, k.device, k.bot, k.referrer, k.country, k.user_agent
FROM short_clicks k JOIN short_links l ON l.id = k.link_id
JOIN short_domains d ON d.id = l.domain_id JOIN short_codes c ON c.id = k.code_id
WHERE l.partner_id = $1 AND k.link_id = ANY($2::bigint[]) AND k.id > $3
ORDER BY k.id LIMIT $4"""


async def report_page(conn: Conn, partner_id: int, link_ids: Sequence[int], after: int,
                      limit: int) -> list[asyncpg.Record]:
    """One page of a click report, oldest first (keyset on the click id)."""
    return await conn.fetch(REPORT_SQL, partner_id, list(link_ids), after, limit)


@dataclass(frozen=True, slots=True)
class RecipientClicks:
    recipient: str
    message_id: UUID | None
    clicks: int
    bot_clicks: int
    first_click_at: datetime | None
    last_click_at: datetime | None


_RECIPIENTS = """SELECT c.recipient, c.message_id, c.clicks, c.bot_clicks, c.first_click_at, c.last_click_at
FROM short_codes c JOIN short_links l ON l.id = c.link_id
WHERE l.partner_id = $1 AND l.id = $2 AND c.recipient IS NOT NULL AND c.clicks > 0
ORDER BY c.first_click_at DESC, c.id LIMIT $3"""


async def clicked_recipients(conn: Conn, partner_id: int, link_id: int, limit: int = 100) -> list[RecipientClicks]:
    """Recipients of a per-recipient link who clicked, latest first click first."""
    return [RecipientClicks(**dict(r)) for r in await conn.fetch(_RECIPIENTS, partner_id, link_id, limit)]


_BY_MESSAGE = """SELECT c.recipient, c.message_id, c.clicks, c.bot_clicks, c.first_click_at, c.last_click_at
FROM short_codes c JOIN short_links l ON l.id = c.link_id
WHERE l.partner_id = $1 AND c.message_id = ANY($2::uuid[])"""


async def clicks_by_message(conn: Conn, partner_id: int, message_ids: Sequence[UUID]) -> dict[UUID, RecipientClicks]:
    """Click count and first click of each message's own short link (EDR screens)."""
    rows = await conn.fetch(_BY_MESSAGE, partner_id, list(message_ids))
    return {r["message_id"]: RecipientClicks(**dict(r)) for r in rows}
