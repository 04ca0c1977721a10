"""The monthly partitions of ``messages`` (migration 0700): months ahead, and retention.

``messages`` is partitioned by RANGE on its UUIDv7 id, one partition a month
(``messages_yYYYYmMM``), after the partition that holds every message stored
before the table was partitioned (``messages_before_yYYYYmMM``). This module

* keeps :data:`MONTHS_AHEAD` months beyond the current one created, so an insert
  never finds no partition (:func:`ensure_months`, at start-up and hourly);
* drops the partitions whose last message is older than the retention setting
  (``HERALD_EDR_RETENTION_MONTHS``; 0 keeps everything): a whole month goes at once,
  with its indexes, in a moment, instead of a DELETE of millions of rows
  (:func:`drop_expired`).

Neither stops the traffic. A month is created as a table of its own and then
attached (``herald_message_month``): ATTACH locks ``messages`` only against other
schema changes, where CREATE TABLE … PARTITION OF would lock out every reader and
writer. A month is dropped with DETACH … CONCURRENTLY, which waits for the
transactions that may still read it (a long export) without holding back new
ones, and the detached table is then dropped alone. Both run with a lock timeout,
so that a lock they cannot have at once makes them give up until the next round
rather than queue the traffic behind them. A partition still referenced by a row
of ``send_queue`` cannot be detached (PostgreSQL checks the foreign key); it is
kept, logged, and tried again at the next round. A detach interrupted between its
two transactions (a crash) is finished (``FINALIZE``) at the next round.

The rollups behind the dashboard (``message_rollups``) are not touched: the
totals of months whose messages are gone stay.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from gateway.store.messages import uuid7_time

log = logging.getLogger("herald.partitions")

MONTHS_AHEAD = 2
LOCK_TIMEOUT = "2s"

_PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound, i.inhdetachpending AS pending
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'messages'::regclass
ORDER BY c.relname"""
_BOUND = re.compile(r"FROM \((?:'([0-9a-f-]{36})'|MINVALUE)\) TO \((?:'([0-9a-f-]{36})'|MAXVALUE)\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """A partition of ``messages`` and the times its ids cover: [lower, upper)."""

    name: str
    lower: datetime | None   # None: from the beginning
    upper: datetime | None   # None: no end
    detaching: bool = False  # a concurrent detach was interrupted half-way


def parse_bound(bound: str) -> tuple[datetime | None, datetime | None]:
    """(lower, upper) times of a partition bound as ``pg_get_expr`` prints it."""
    match = _BOUND.search(bound)
    if match is None:
        raise ValueError(f"not a range bound of messages: {bound!r}")
    low, high = match.groups()
    return (uuid7_time(uuid.UUID(low)) if low else None,
            uuid7_time(uuid.UUID(high)) if high else None)


async def partitions(conn: asyncpg.Connection) -> list[Partition]:
    """The partitions of ``messages``, oldest first."""
    found = []
    for row in await conn.fetch(_PARTITIONS):
        lower, upper = parse_bound(row["bound"])
        found.append(Partition(row["relname"], lower, upper, row["pending"]))
    return sorted(found, key=lambda p: (p.lower is not None, p.lower or datetime.min.replace(tzinfo=UTC)))


def month_start(day: date, months: int = 0) -> date:
    """The first day of the month ``months`` after ``day``'s (negative: before)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_to_create(existing: list[Partition], today: date, ahead: int = MONTHS_AHEAD) -> list[date]:
    """First days of the months to create so that months up to ``ahead`` after today's exist.

    Only months after the last partition's end: a gap below it (a month
    dropped by hand) is not filled again.
    """
    last_end = max((p.upper for p in existing if p.upper is not None), default=None)
    start = month_start(last_end.date()) if last_end is not None else month_start(today)
    wanted_end = month_start(today, ahead + 1)
    months = []
    current = start
    while current < wanted_end:
        months.append(current)
        current = month_start(current, 1)
    return months


def expired(existing: list[Partition], today: date, retention_months: int) -> list[Partition]:
    """Partitions whose every message is older than the retention: their end is at or before
    the first day of the month ``retention_months`` before the current one (0: none)."""
    if retention_months <= 0:
        return []
    cutoff = datetime.combine(month_start(today, -retention_months), datetime.min.time(), UTC)
    return [p for p in existing if p.upper is not None and p.upper <= cutoff]


async def ensure_months(conn: asyncpg.Connection, today: date | None = None,
                        ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of the coming months (see the module doc); their names."""
    today = today or datetime.now(UTC).date()
    created = []
    for first in months_to_create(await partitions(conn), today, ahead):
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            created.append(await conn.fetchval("SELECT herald_message_month($1)", first))
    if created:
        log.info("event=message_partitions_created names=%s", ",".join(created))
    return created


async def drop_expired(conn: asyncpg.Connection, retention_months: int,
                       today: date | None = None) -> list[str]:
    """Detach and drop the partitions past the retention; the names dropped.

    Runs its own statements outside any transaction (a concurrent detach must):
    give it a connection of its own, not one inside a transaction.
    """
    today = today or datetime.now(UTC).date()
    dropped = []
    for part in expired(await partitions(conn), today, retention_months):
        name = _ident(part.name)
        try:
            await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            how = "FINALIZE" if part.detaching else "CONCURRENTLY"
            await conn.execute(f"ALTER TABLE messages DETACH PARTITION {name} {how}")
            await conn.execute(f"DROP TABLE {name}")
        except (asyncpg.ForeignKeyViolationError, asyncpg.LockNotAvailableError) as exc:
            log.warning("event=message_partition_kept name=%s reason=%r", part.name,
                        exc.detail or exc.message)
            continue
        finally:
            await conn.execute("RESET lock_timeout")
        log.info("event=message_partition_dropped name=%s upper=%s", part.name, part.upper.isoformat())
        dropped.append(part.name)
    return dropped


def _ident(name: str) -> str:
    """A table name quoted for SQL (names come from the catalogue, not from users)."""
    return '"' + name.replace('"', '""') + '"'


async def maintain(conn: asyncpg.Connection, retention_months: int,
                   today: date | None = None) -> dict[str, list[str]]:
    """Both chores: months ahead first, then retention."""
    return {"created": await ensure_months(conn, today),
            "dropped": await drop_expired(conn, retention_months, today)}
