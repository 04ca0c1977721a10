"""The stop list as the Contacts screens see it: blocked sender IDs per number, block and unblock.

The table is the pipeline's ``stop_list`` (0304; :mod:`gateway.accept.stoplist` checks
it for every message): a block made here stops the next API or SMPP message
to that number from that sender ID. ``'*'`` stands for all sender IDs.
Blocking adds pairs and never replaces the ones a number has.

The Stop List screen lists numbers (a contact's or not: an opt-out by MO may
come from a number that is no contact), each with its blocked sender IDs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from contacts import phones

Conn = asyncpg.Connection | asyncpg.Pool
ALL = "*"
SENDER_MAX = 32
BULK_MAX = 1000


@dataclass(frozen=True, slots=True)
class Blocked:
    """One number of the stop list with its blocked sender IDs and its contact, if any."""

    msisdn: str
    senders: list[str]
    sources: list[str]
    last_at: datetime
    contact_id: int | None
    first_name: str
    last_name: str
    group_ids: list[int]

    @property
    def all_senders(self) -> bool:
        return ALL in self.senders

    @property
    def display_phone(self) -> str:
        return phones.display(self.msisdn)

    @property
    def row_id(self) -> int:
        return int(self.msisdn)


def clean_senders(senders: Sequence[str]) -> list[str]:
    """Sender IDs as given, trimmed, without repeats, empty or unprintable ones; ``'*'`` alone
    when it is there (it blocks everything already)."""
    found: dict[str, None] = {}
    for raw in senders:
        sender = str(raw).strip()
        if not sender or len(sender) > SENDER_MAX or not sender.isprintable():
            continue
        found.setdefault(sender, None)
    if ALL in found:
        return [ALL]
    return list(found)


async def block(conn: Conn, partner_id: int, msisdns: Sequence[str], senders: Sequence[str], *,
                source: str = "manual", user_id: int | None = None) -> int:
    """Block every sender of ``senders`` for every number; returns the pairs added."""
    senders = clean_senders(senders)
    if not msisdns or not senders:
        return 0
    result = await conn.execute(
        """INSERT INTO stop_list (partner_id, msisdn, sender, source, created_by)
           SELECT $1, m, s, $4, $5 FROM unnest($2::text[]) m, unnest($3::text[]) s
           ON CONFLICT DO NOTHING""",
        partner_id, list(dict.fromkeys(msisdns)), senders, source, user_id)
    return int(result.split()[-1])


async def unblock(conn: Conn, partner_id: int, msisdns: Sequence[str],
                  senders: Sequence[str] | None = None) -> int:
    """Lift blocks of the numbers: of ``senders``, or all of them (None). Returns the pairs lifted."""
    if not msisdns:
        return 0
    if senders is None:
        result = await conn.execute(
            "DELETE FROM stop_list WHERE partner_id = $1 AND msisdn = ANY($2::text[])",
            partner_id, list(msisdns))
    else:
        senders = [str(s).strip() for s in senders if str(s).strip()]
        result = await conn.execute(
            """DELETE FROM stop_list WHERE partner_id = $1 AND msisdn = ANY($2::text[])
                                          AND sender = ANY($3::text[])""",
            partner_id, list(msisdns), senders)
    return int(result.split()[-1])


async def senders_of(conn: Conn, partner_id: int, msisdn: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT sender FROM stop_list WHERE partner_id = $1 AND msisdn = $2 ORDER BY sender",
        partner_id, msisdn)
    return [r["sender"] for r in rows]


_PAGE = """
WITH page AS (
    SELECT s.msisdn, array_agg(s.sender ORDER BY s.sender) AS senders,
           array_agg(DISTINCT s.source) AS sources, max(s.created_at) AS last_at
    FROM stop_list s
    WHERE s.partner_id = $1
      AND ($2 = '' OR (s.msisdn >= $2 AND s.msisdn < $2 || ':'))
      AND {position}
    GROUP BY s.msisdn
    HAVING $3 = '' OR bool_or(contact_fold(s.sender) = contact_fold($3))
    ORDER BY s.msisdn {direction} LIMIT $5
)
SELECT page.*, c.id AS contact_id, coalesce(c.first_name, '') AS first_name,
       coalesce(c.last_name, '') AS last_name, coalesce(c.group_ids, '{{}}') AS group_ids
FROM page LEFT JOIN contacts c ON c.partner_id = $1 AND c.phone = page.msisdn
ORDER BY page.msisdn {direction}"""
_PAGE_AFTER = _PAGE.format(position="($4 = '' OR s.msisdn > $4)", direction="")
_PAGE_BEFORE = _PAGE.format(position="s.msisdn < $4", direction="DESC")


def _blocked(row: asyncpg.Record) -> Blocked:
    return Blocked(**dict(row))


def position(cursor: tuple | None) -> str | None:
    """A stop list page position (a number's digits) from a decoded cursor."""
    if cursor is not None and len(cursor) == 1 and isinstance(cursor[0], str) and cursor[0].isdigit():
        return cursor[0]
    return None


async def list_page(conn: Conn, partner_id: int, *, phone: str = "", sender: str = "",
                    after: tuple | None = None, before: tuple | None = None,
                    limit: int = 25) -> list[Blocked]:
    """Numbers in order, after (or before) a number; ``phone`` is a digit prefix."""
    back = position(before)
    if back is not None and position(after) is None:
        rows = await conn.fetch(_PAGE_BEFORE, partner_id, phone, sender, back, limit)
        return [_blocked(r) for r in reversed(rows)]
    rows = await conn.fetch(_PAGE_AFTER, partner_id, phone, sender, position(after) or "", limit)
    return [_blocked(r) for r in rows]


async def numbers(conn: Conn, partner_id: int, msisdns: Sequence[str]) -> list[Blocked]:
    """The stop list rows of the given numbers (those that have blocks)."""
    wanted = [m for m in dict.fromkeys(msisdns) if m.isdigit()][:BULK_MAX]
    rows = await conn.fetch(
        """WITH page AS (
               SELECT s.msisdn, array_agg(s.sender ORDER BY s.sender) AS senders,
                      array_agg(DISTINCT s.source) AS sources, max(s.created_at) AS last_at
               FROM stop_list s WHERE s.partner_id = $1 AND s.msisdn = ANY($2::text[])
               GROUP BY s.msisdn)
           SELECT page.*, c.id AS contact_id, coalesce(c.first_name, '') AS first_name,
                  coalesce(c.last_name, '') AS last_name, coalesce(c.group_ids, '{}') AS group_ids
           FROM page LEFT JOIN contacts c ON c.partner_id = $1 AND c.phone = page.msisdn
           ORDER BY page.msisdn""", partner_id, wanted)
    return [_blocked(r) for r in rows]


async def stream(conn: Conn, partner_id: int, *, phone: str = "", sender: str = "",
                 batch: int = 2000) -> AsyncIterator[Blocked]:
    """Every number of the stop list matching the filters, in order, in batches (an export)."""
    after: tuple | None = None
    while True:
        rows = await list_page(conn, partner_id, phone=phone, sender=sender, after=after, limit=batch)
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = (rows[-1].msisdn,)
