"""The click writer: clicks kept in memory and stored in batches, off the redirect's path.

The redirect appends a tuple to a list (:meth:`ClickWriter.record`, no I/O)
and answers. Every ``interval`` seconds (0.2 by default) the writer takes
what gathered, classifies the user agents (cached; the ones not seen yet are
parsed in a worker thread) and stores the batch with its counters in one
statement (:func:`shortener.clicks.write_batch`).

What a crash can lose: the clicks recorded since the last flush began, that
is at most ``interval`` seconds of them plus the batch being written when the
process died (a statement in flight is rolled back whole). A clean stop
flushes everything first. When PostgreSQL is unreachable the batches wait in
memory and are tried again; past ``max_pending`` clicks the oldest are dropped
and counted (``herald_short_clicks_dropped_total``), so a long outage cannot
exhaust memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from gateway.base import tasks
from shortener import clicks, useragents

log = logging.getLogger("herald.shortener.clicks")

# (unix time, code id, HEAD request, user agent, referrer, country)
Pending = tuple[float, int, bool, str, str, str]


class ClickWriter:
    """Batches clicks into PostgreSQL (see the module doc)."""

    def __init__(self, pool: asyncpg.Pool, *, interval: float = 0.2, batch: int = 5000,
                 max_pending: int = 500_000, on_written: Callable[[int], None] | None = None,
                 on_dropped: Callable[[int], None] | None = None) -> None:
        self.pool = pool
        self.interval = interval
        self.batch = batch
        self.max_pending = max_pending
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.written = 0
        self.dropped = 0
        self._pending: list[Pending] = []
        self._task: asyncio.Task | None = None
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()

    def record(self, code_id: int, head: bool, user_agent: str, referrer: str, country: str) -> None:
        """Keep one click for the next batch (called by the redirect; no I/O)."""
        self._pending.append((time.time(), code_id, head, user_agent[: useragents.MAX_AGENT],
                              referrer[:500], country))

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="short-click-writer")

    async def stop(self) -> None:
        """Flush everything and stop. The loop is asked to end, not cancelled: a batch
        cancelled while PostgreSQL commits it could be written a second time."""
        if self._task is not None:
            self._closing.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10.0)
            except Exception:
                await tasks.cancel(self._task)
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("event=short_clicks_lost count=%d", len(self._pending))

    async def _loop(self) -> None:
        failures = 0
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), min(self.interval * 2 ** failures, 5.0))
            try:
                await self.flush()
                failures = 0
            except Exception:
                failures = min(failures + 1, 5)
                log.exception("event=short_clicks_flush_failed pending=%d", len(self._pending))

    async def flush(self) -> int:
        """Store every click recorded so far; returns how many were stored."""
        async with self._lock:
            stored = 0
            while self._pending:
                taken, self._pending = self._pending[: self.batch], self._pending[self.batch :]
                try:
                    done = await self._write(taken)
                except BaseException:
                    # Tried again next time, in order. Only a connection lost between the
                    # commit and its answer can make this store a batch twice.
                    self._pending[:0] = taken
                    self._cap()
                    raise
                stored += done
                self.written += done
                if self.on_written is not None:
                    self.on_written(done)
            return stored

    def _cap(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess > 0:
            del self._pending[:excess]
            self.dropped += excess
            if self.on_dropped is not None:
                self.on_dropped(excess)
            log.error("event=short_clicks_dropped count=%d reason=backlog", excess)

    async def _write(self, taken: list[Pending]) -> int:
        unknown = [a for a in {p[3] for p in taken} if useragents.cached(a) is None]
        if unknown:
            await asyncio.to_thread(useragents.classify_many, unknown)
        batch = []
        for at, code_id, head, agent, referrer, country in taken:
            kind = useragents.classify(agent)
            batch.append(clicks.Click(code_id, datetime.fromtimestamp(at, UTC), kind.bot or head,
                                      kind.os, kind.browser, kind.device, referrer, country, agent))
        for attempt in range(3):
            try:
                async with self.pool.acquire() as conn:
                    return await clicks.write_batch(conn, batch)
            except asyncpg.DeadlockDetectedError:
                # Two processes moved the same links' counters in opposite orders; the
                # statement was rolled back whole, so trying again stores each click once.
                if attempt == 2:
                    raise
        return 0

