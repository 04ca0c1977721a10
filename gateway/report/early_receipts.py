"""Delivery receipts that arrived before Herald knew the vendor's id for their message:
kept, and applied again by housekeeping (``gateway/report/README.md``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.store.messages import Event, ReceiptUpdate, find_by_vendor_id

log = logging.getLogger("herald.early_receipts")

_STORE = """
INSERT INTO early_receipts (vendor_id, receipted_id, event, event_at, error_code, received_at)
VALUES ($1, $2, $3, $4, $5, coalesce($6, now()))
RETURNING id"""

_DUE = """
SELECT id, vendor_id, receipted_id, event, event_at, error_code, received_at
FROM early_receipts WHERE id > $1 ORDER BY id LIMIT $2"""


@dataclass(frozen=True, slots=True)
class ReapplyResult:
    applied: int   # stored receipts whose message is now known (moved or already past them)
    dropped: int   # older than the horizon, message still unknown
    waiting: int   # kept for the next round


async def store(
    conn: asyncpg.Connection | asyncpg.Pool, update: ReceiptUpdate,
    received_at: datetime | None = None,
) -> int:
    """Keep a receipt whose message is not known yet; its row id."""
    return await conn.fetchval(
        _STORE, update.vendor_id, update.receipt_message_id, str(update.event),
        update.at or datetime.now(UTC), update.error_code, received_at,
    )


async def reapply(
    pool: asyncpg.Pool, writer, *, horizon: float, now: datetime | None = None,
    batch: int = 500,
) -> ReapplyResult:
    """Apply every stored receipt again through ``writer`` (a started ReceiptWriter).

    Oldest first, ``batch`` receipts per writer call; ``now`` decides which are
    past the ``horizon`` (seconds after they were received).
    """
    now = now or datetime.now(UTC)
    oldest_kept = now - timedelta(seconds=horizon)
    total = ReapplyResult(0, 0, 0)
    after = 0
    while True:
        rows = await pool.fetch(_DUE, after, batch)
        if not rows:
            break
        after = rows[-1]["id"]
        result = await _reapply_batch(pool, writer, rows, oldest_kept)
        total = ReapplyResult(total.applied + result.applied, total.dropped + result.dropped,
                              total.waiting + result.waiting)
        if len(rows) < batch:
            break
    if total.applied:
        log.info("event=early_receipts_applied count=%s", total.applied)
    return total


async def _reapply_batch(
    pool: asyncpg.Pool, writer, rows: list[asyncpg.Record], oldest_kept: datetime,
) -> ReapplyResult:
    updates = [ReceiptUpdate(r["vendor_id"], r["receipted_id"], Event(r["event"]), r["event_at"],
                             r["error_code"]) for r in rows]
    moved = await writer.submit(updates)
    done: list[int] = []
    dropped: list[int] = []
    async with pool.acquire() as conn:
        for row, update, message in zip(rows, updates, moved, strict=True):
            # Found but not moved: a repeat, or the message is already past this event.
            if message is not None or await find_by_vendor_id(
                    conn, update.vendor_id, update.receipt_message_id) is not None:
                done.append(row["id"])
            elif row["received_at"] < oldest_kept:
                log.warning("event=early_receipt_dropped vendor=%s id=%s event=%s received_at=%s",
                            row["vendor_id"], row["receipted_id"], row["event"],
                            row["received_at"].isoformat())
                dropped.append(row["id"])
        if done or dropped:
            await conn.execute("DELETE FROM early_receipts WHERE id = ANY($1::bigint[])",
                               done + dropped)
    return ReapplyResult(len(done), len(dropped), len(rows) - len(done) - len(dropped))
