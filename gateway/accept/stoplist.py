"""The stop list: numbers a partner's sender ID must not send to (table ``stop_list``, 0304)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool
ANY_SENDER = "*"


@dataclass(frozen=True, slots=True)
class StopEntry:
    partner_id: int
    msisdn: str
    sender: str
    source: str
    created_at: datetime


async def add(conn: Conn, partner_id: int, msisdn: str, sender: str = ANY_SENDER,
              source: str = "manual") -> bool:
    """Stop ``sender`` (or every sender, ``'*'``) of the partner sending to ``msisdn``."""
    result = await conn.execute(
        """INSERT INTO stop_list (partner_id, msisdn, sender, source) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING""",
        partner_id, msisdn, sender, source,
    )
    return result == "INSERT 0 1"


async def remove(conn: Conn, partner_id: int, msisdn: str, sender: str = ANY_SENDER) -> bool:
    result = await conn.execute(
        "DELETE FROM stop_list WHERE partner_id = $1 AND msisdn = $2 AND sender = $3",
        partner_id, msisdn, sender,
    )
    return result == "DELETE 1"


_STOPPED = """
SELECT q.partner_id, q.sender, q.msisdn
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS q(partner_id, sender, msisdn)
WHERE EXISTS (SELECT 1 FROM stop_list s
              WHERE s.partner_id = q.partner_id AND s.msisdn = q.msisdn
                AND s.sender IN (q.sender, '*'))"""
# The same with the arrays as array literals, one text value each (see _array): asyncpg
# would check and encode each of a batch's hundreds of elements one by one.
_STOPPED_LITERALS = _STOPPED.replace(
    "unnest($1::bigint[], $2::text[], $3::text[])",
    "unnest($1::text::bigint[], $2::text::text[], $3::text::text[])")


async def stopped(
    conn: Conn, items: Sequence[tuple[int, str, str]]
) -> set[tuple[int, str, str]]:
    """The (partner_id, sender, msisdn) triples of ``items`` that the stop list blocks."""
    if not items:
        return set()
    unique = list(dict.fromkeys(items))
    partner_ids = [i[0] for i in unique]
    senders = [i[1] for i in unique]
    msisdns = [i[2] for i in unique]
    if set(map(type, partner_ids)) == {int} and set(map(type, senders)) == set(map(type, msisdns)) == {str}:
        args = ("{" + ",".join(map(str, partner_ids)) + "}", _array(senders), _array(msisdns))
        rows = await conn.fetch(_STOPPED_LITERALS, *args)
    else:  # anything else as asyncpg takes it (and refuses it)
        rows = await conn.fetch(_STOPPED, partner_ids, senders, msisdns)
    return {(r["partner_id"], r["sender"], r["msisdn"]) for r in rows}


def _array(values: list[str]) -> str:
    """A PostgreSQL text[] literal: digit strings as they are, anything else quoted."""
    joined = ",".join(values)
    if all(values) and joined.replace(",", "").isdigit() and joined.isascii():
        return "{" + joined + "}"
    # a batch repeats its few senders: each distinct value is quoted once
    quoted = {v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in set(values)}
    return "{" + ",".join(map(quoted.__getitem__, values)) + "}"


async def list_for_partner(conn: Conn, partner_id: int, limit: int = 100) -> list[StopEntry]:
    rows = await conn.fetch(
        """SELECT partner_id, msisdn, sender, source, created_at FROM stop_list
           WHERE partner_id = $1 ORDER BY created_at DESC, msisdn LIMIT $2""",
        partner_id, limit,
    )
    return [StopEntry(**dict(r)) for r in rows]
