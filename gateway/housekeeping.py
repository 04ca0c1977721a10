"""Periodic chores of a Herald process: sender IDs whose validity period ended.

Every process runs the same chores; each is one idempotent statement, so two
processes doing it at once change nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import asyncpg

from billing import senders

log = logging.getLogger("herald.housekeeping")


async def run_chores(pool: asyncpg.Pool, now: datetime | None = None) -> dict[str, int]:
    """Do every chore once; returns what each one changed."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        expired = await senders.expire_due(conn, now)
    if expired:
        log.info("event=sender_ids_expired count=%s", expired)
    return {"sender_ids_expired": expired}


class Housekeeping:
    """A service running :func:`run_chores` every ``interval`` seconds."""

    def __init__(self, pool: asyncpg.Pool, interval: float = 60.0) -> None:
        self.pool = pool
        self.interval = interval
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await run_chores(self.pool)
            except Exception:
                log.exception("event=housekeeping_failed")
            await asyncio.sleep(self.interval)
