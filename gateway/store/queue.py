"""The durable send queue in PostgreSQL (table ``send_queue``, migration 0301): each
message with its route, claimed by workers under a lease (``gateway/store/README.md``)."""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from gateway.store import pgcopy
from gateway.store.messages import (
    INSERT_COLUMNS,
    Message,
    NewMessage,
    insert_messages,
    message_columns,
    unnest_args,
    unnest_insert,
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A queued message leased to one worker, with the message itself."""

    message_id: uuid.UUID
    vendor_id: int
    route: tuple[int, ...]
    position: int
    attempt: int
    claimed_until: datetime
    message: Message | None  # None for failover() answers, which do not re-read it


def new_worker_id() -> str:
    """An id unique to this worker instance: host, pid, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def backoff(
    attempt: int, *, base: float = 1.0, cap: float = 300.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential, capped, full jitter.

    Full jitter (a uniform draw below the exponential bound) spreads retries of
    many messages that failed together instead of sending them back in a wave.
    """
    bound = min(cap, base * (2 ** max(0, attempt)))
    return bound * rand()


async def enqueue(
    conn: asyncpg.Connection,
    items: Sequence[tuple[uuid.UUID, Sequence[int]] | tuple[uuid.UUID, Sequence[int], datetime | None]],
) -> None:
    """Queue messages for sending; each route must name at least one vendor.

    An item may carry a third value, ``not_before``: no worker claims the row
    earlier (a scheduled message, SMPP 3.4 §5.2.14). None, or no third value, is now.
    """
    if not items:
        return
    due = []
    scheduled = []
    for item in items:
        route = item[1]
        if not route:
            raise ValueError(f"message {item[0]}: empty route")
        if len(item) == 2 or item[2] is None:
            due.append((item[0], list(route), route[0]))
        else:
            scheduled.append((item[0], list(route), route[0], item[2]))
    if due:
        await pgcopy.copy(conn, "send_queue", _DUE_ROWS, due)
    if scheduled:
        await pgcopy.copy(conn, "send_queue", _SCHEDULED_ROWS, scheduled)


# Rows of a batch share a handful of routes: each is encoded once while it repeats.
_DUE_ROWS = pgcopy.CopyTable(
    [("message_id", "uuid"), ("route", "bigint[]"), ("vendor_id", "bigint")],
    repeated=("route", "vendor_id"))
_SCHEDULED_ROWS = pgcopy.CopyTable(
    [("message_id", "uuid"), ("route", "bigint[]"), ("vendor_id", "bigint"),
     ("not_before", "timestamp with time zone")],
    repeated=("route", "vendor_id"))


# Up to this many messages are stored and queued by one statement (one round trip); more
# go by two binary COPYs (four round trips, but cheaper per row).
UNNEST_MAX_ROWS = 256
_N = len(INSERT_COLUMNS)
# The foreign key of send_queue is checked at the end of the statement, once the messages
# of the same statement are in.
_STORE_AND_QUEUE = f"""WITH m AS ({unnest_insert(1)}
), q AS (
    INSERT INTO send_queue (message_id, route, vendor_id, not_before)
    SELECT q.id, q.route::bigint[], q.vendor_id, coalesce(q.not_before, now())
    FROM unnest(${_N + 1}::uuid[], ${_N + 2}::text[], ${_N + 3}::bigint[], ${_N + 4}::timestamptz[])
         AS q(id, route, vendor_id, not_before)
)
SELECT"""


async def insert_and_enqueue(conn: asyncpg.Connection, msgs: Sequence[NewMessage]) -> None:
    """Store ``msgs`` and queue each one that has a route, from its ``scheduled_for``
    (inside the caller's transaction): one statement up to :data:`UNNEST_MAX_ROWS`
    messages, two binary COPYs above."""
    if not msgs:
        return
    if len(msgs) > UNNEST_MAX_ROWS:
        await insert_messages(conn, msgs)
        await enqueue(conn, [(m.id, m.route, m.scheduled_for) for m in msgs if m.route])
        return
    ids, routes, vendors, not_before = [], [], [], []
    for m in msgs:
        if m.route:
            ids.append(m.id)
            routes.append("{" + ",".join(map(str, map(int, m.route))) + "}")
            vendors.append(m.route[0])
            not_before.append(m.scheduled_for)
    await conn.execute(_STORE_AND_QUEUE, *unnest_args(msgs), ids, routes, vendors, not_before)


_CLAIM = """
WITH picked AS (
    SELECT message_id FROM send_queue
    WHERE not_before <= now() {vendor}
    ORDER BY not_before
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE send_queue q SET
    claimed_by = $1,
    claimed_until = now() + make_interval(secs => $3),
    not_before = now() + make_interval(secs => $3),
    attempt = q.attempt + 1
FROM picked, messages m
WHERE q.message_id = picked.message_id AND m.id = q.message_id
RETURNING {columns}, q.message_id AS q_message_id, q.vendor_id AS q_vendor_id,
          q.route AS q_route, q.position AS q_position, q.attempt AS q_attempt,
          q.claimed_until AS q_claimed_until
"""
_CLAIM_ANY = _CLAIM.format(vendor="", columns=message_columns("m"))
_CLAIM_VENDOR = _CLAIM.format(vendor="AND vendor_id = $4", columns=message_columns("m"))


def _claim(record: asyncpg.Record, with_message: bool = True) -> Claim:
    return Claim(
        message_id=record["q_message_id"], vendor_id=record["q_vendor_id"],
        route=tuple(record["q_route"]), position=record["q_position"],
        attempt=record["q_attempt"], claimed_until=record["q_claimed_until"],
        message=Message.from_row(record) if with_message else None,
    )


async def claim(
    conn: asyncpg.Connection, worker_id: str, limit: int, vendor_id: int | None = None, *,
    lease: float = 30.0,
) -> list[Claim]:
    """Lease up to ``limit`` due messages (for one vendor, or any) to ``worker_id``."""
    if vendor_id is None:
        records = await conn.fetch(_CLAIM_ANY, worker_id, limit, float(lease))
    else:
        records = await conn.fetch(_CLAIM_VENDOR, worker_id, limit, float(lease), vendor_id)
    claims = [_claim(r) for r in records]
    claims.sort(key=lambda c: c.message_id)  # UUIDv7: oldest first
    return claims


async def complete(conn: asyncpg.Connection, worker_id: str, message_id: uuid.UUID) -> bool:
    """The vendor took the message: drop it from the queue. False if no longer ours."""
    result = await conn.execute(
        "DELETE FROM send_queue WHERE message_id = $1 AND claimed_by = $2", message_id, worker_id
    )
    return result == "DELETE 1"


async def complete_many(
    conn: asyncpg.Connection, worker_id: str, message_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """:func:`complete` (or :func:`fail`) for many rows; the ids that were still ours."""
    if not message_ids:
        return set()
    rows = await conn.fetch(
        """DELETE FROM send_queue WHERE message_id = ANY($1::uuid[]) AND claimed_by = $2
           RETURNING message_id""",
        list(message_ids), worker_id,
    )
    return {r["message_id"] for r in rows}


async def fail(
    conn: asyncpg.Connection, worker_id: str, message_id: uuid.UUID, error: str | None = None
) -> bool:
    """Give up on the message (mark it FAILED in the same transaction). False if not ours."""
    # The error belongs on the message row; the queue row simply goes away.
    del error
    return await complete(conn, worker_id, message_id)


async def retry_later(
    conn: asyncpg.Connection, worker_id: str, message_id: uuid.UUID, delay: float,
    error: str | None = None,
) -> bool:
    """Give the message back, claimable again after ``delay`` seconds. False if not ours."""
    result = await conn.execute(
        """UPDATE send_queue SET claimed_by = NULL, claimed_until = NULL,
               not_before = now() + make_interval(secs => $3), last_error = coalesce($4, last_error)
           WHERE message_id = $1 AND claimed_by = $2""",
        message_id, worker_id, float(delay), error,
    )
    return result == "UPDATE 1"


async def failover(
    conn: asyncpg.Connection, worker_id: str, message_id: uuid.UUID, error: str | None = None
) -> Claim | None:
    """Move the message to the next vendor of its route, due now, attempts reset.

    None when the route is exhausted (or the row is no longer ours): then
    :func:`fail` it.
    """
    record = await conn.fetchrow(
        """UPDATE send_queue SET position = position + 1, vendor_id = route[position + 2],
               attempt = 0, claimed_by = NULL, claimed_until = NULL, not_before = now(),
               last_error = coalesce($3, last_error)
           WHERE message_id = $1 AND claimed_by = $2 AND position + 1 < cardinality(route)
           RETURNING message_id AS q_message_id, vendor_id AS q_vendor_id, route AS q_route,
                     position AS q_position, attempt AS q_attempt,
                     now() AS q_claimed_until""",
        message_id, worker_id, error,
    )
    return _claim(record, with_message=False) if record else None


async def release(
    conn: asyncpg.Connection, worker_id: str, message_ids: Sequence[uuid.UUID]
) -> int:
    """Return claimed rows to the queue at once (a clean shutdown); the count released."""
    result = await conn.execute(
        """UPDATE send_queue SET claimed_by = NULL, claimed_until = NULL, not_before = now(),
               attempt = greatest(attempt - 1, 0)
           WHERE message_id = ANY($1::uuid[]) AND claimed_by = $2""",
        list(message_ids), worker_id,
    )
    return int(result.split()[-1])


async def extend_lease(
    conn: asyncpg.Connection, worker_id: str, message_ids: Sequence[uuid.UUID], lease: float
) -> int:
    """Keep rows this worker still holds for ``lease`` more seconds; the count extended."""
    result = await conn.execute(
        """UPDATE send_queue SET claimed_until = now() + make_interval(secs => $3),
               not_before = now() + make_interval(secs => $3)
           WHERE message_id = ANY($1::uuid[]) AND claimed_by = $2""",
        list(message_ids), worker_id, float(lease),
    )
    return int(result.split()[-1])


async def depth(conn: asyncpg.Connection, vendor_id: int | None = None) -> int:
    """Messages queued (claimed or not), for one vendor or all."""
    if vendor_id is None:
        return await conn.fetchval("SELECT count(*) FROM send_queue")
    return await conn.fetchval("SELECT count(*) FROM send_queue WHERE vendor_id = $1", vendor_id)
