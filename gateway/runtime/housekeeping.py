"""Periodic chores of a Herald process.

* sender IDs whose validity period ended (:func:`accounts.senders.expire_due`);
* long MO whose parts stopped arriving: a set older than the reassembly timeout
  is stored as an incomplete MO by :meth:`gateway.report.mo.MoHandler.expire_parts`,
  the same function the MO path calls as traffic arrives — here it also runs
  when no more MO comes;
* short links archived more than 30 days ago, with their codes and clicks
  (:func:`shortener.links.purge_archived`: decided from the archive date, so
  a restart only delays it);
* delivery receipts that came before their message's vendor id was recorded
  (:func:`gateway.report.early_receipts.reapply`): applied again through the receipt
  writer, dropped past ``receipt_horizon`` seconds;
* the monthly partitions of ``messages`` (:func:`gateway.store.partitions.maintain`):
  the coming months created, those past ``HERALD_EDR_RETENTION_MONTHS`` dropped, once
  an hour (``partition_interval``).

Every process runs the same chores; each is idempotent, so two processes doing
it at once change nothing twice. Early receipts are looked at every
``receipt_interval`` seconds (a receipt waiting there holds a status back), the
rest every ``interval``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg

from accounts import senders
from gateway.base import tasks
from gateway.base.app import task_health
from gateway.report import early_receipts
from gateway.store import partitions
from shortener import links as short_links

log = logging.getLogger("herald.housekeeping")

DEFAULT_RECEIPT_HORIZON = 24 * 3600.0


async def run_chores(
    pool: asyncpg.Pool, now: datetime | None = None, *, mo=None, receipts=None,
    receipt_horizon: float = DEFAULT_RECEIPT_HORIZON,
) -> dict[str, int]:
    """Do every chore once; returns what each one changed.

    ``mo`` (a :class:`gateway.report.mo.MoHandler`) and ``receipts`` (a started
    :class:`gateway.send.delivery.ReceiptWriter`) enable their chores.
    """
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        expired = await senders.expire_due(conn, now)
        purged = await short_links.purge_archived(conn, now)
    if expired:
        log.info("event=sender_ids_expired count=%s", expired)
    if purged:
        log.info("event=short_links_purged count=%s", purged)
    done = {"sender_ids_expired": expired, "short_links_purged": purged}
    if mo is not None:
        done["mo_sets_expired"] = len(await mo.expire_parts(now))
    if receipts is not None:
        done.update(await reapply_receipts(pool, receipts, now, receipt_horizon))
    return done


async def reapply_receipts(
    pool: asyncpg.Pool, receipts, now: datetime | None = None,
    horizon: float = DEFAULT_RECEIPT_HORIZON,
) -> dict[str, int]:
    """The early-receipt chore alone (it runs more often than the others)."""
    result = await early_receipts.reapply(pool, receipts, horizon=horizon, now=now)
    return {"early_receipts_applied": result.applied, "early_receipts_dropped": result.dropped}


class Housekeeping:
    """A service running :func:`run_chores` every ``interval`` seconds (see the module doc)."""

    name = "housekeeping"  # in /healthz

    def __init__(
        self, pool: asyncpg.Pool, interval: float = 60.0, *, mo=None, receipts=None,
        receipt_interval: float = 5.0, receipt_horizon: float = DEFAULT_RECEIPT_HORIZON,
        retention_months: int = 0, partition_interval: float = 3600.0,
    ) -> None:
        self.pool = pool
        self.interval = interval
        self.mo = mo
        self.receipts = receipts
        self.receipt_interval = min(receipt_interval, interval)
        self.receipt_horizon = receipt_horizon
        self.retention_months = retention_months
        self.partition_interval = partition_interval
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="housekeeping")

    async def maintain_partitions(self) -> dict[str, list[str]]:
        """Create the coming months of ``messages``, drop those past the retention."""
        async with self.pool.acquire() as conn:
            return await partitions.maintain(conn, self.retention_months)

    async def stop(self) -> None:
        await tasks.cancel(self._task)

    def health(self) -> str:
        """``"ok"`` while the chores' loop runs (``/healthz``)."""
        return task_health(self._task)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = next_partitions = loop.time()
        while True:
            full = loop.time() >= next_full
            if loop.time() >= next_partitions:
                next_partitions = loop.time() + self.partition_interval
                try:
                    await self.maintain_partitions()
                except Exception:
                    log.exception("event=partition_maintenance_failed")
            try:
                if full:
                    next_full = loop.time() + self.interval
                    await run_chores(self.pool, mo=self.mo, receipts=self.receipts,
                                     receipt_horizon=self.receipt_horizon)
                elif self.receipts is not None:
                    await reapply_receipts(self.pool, self.receipts, horizon=self.receipt_horizon)
            except Exception:
                log.exception("event=housekeeping_failed")
            await asyncio.sleep(self.receipt_interval if self.receipts is not None
                                else self.interval)
