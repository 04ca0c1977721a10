"""Group commit: many producers, one transaction per few milliseconds (``GroupCommit``);
a message is acknowledged only once committed. How batches form and fail:
``gateway/store/README.md``."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg

from config.errors import HeraldError

log = logging.getLogger("herald.commit")

T = TypeVar("T")
R = TypeVar("R")

# Steps a commit function leaves for the engine to run once its transaction committed.
AfterCommit = list[Callable[[], None]]
# commit(conn, items) -> one result per item, in order; given after_commit=AfterCommit as
# well when the engine is built with with_after_commit=True.
Commit = Callable[..., Awaitable[Sequence[R]]]


class WriterClosed(HeraldError):
    """The writer is stopping or stopped; the message was not stored."""

    http_status = 503


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    rows: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    retried_batches: int = 0   # the message writer's batches charged again under the lock


@dataclass(slots=True)
class _Request:
    msgs: list
    future: asyncio.Future


class GroupCommit(Generic[T, R]):
    """The batching engine: ``submit(items)`` from many tasks, ``commit(conn, batch)`` rarely.

    ``commit`` runs inside one transaction per batch and returns one result per
    item, in order. ``own_transaction=True``: ``commit`` gets a connection
    outside any transaction and opens its own. ``with_after_commit=True``:
    ``commit`` is called as ``commit(conn, items, after_commit=steps)``; the
    callables it appends to ``steps`` (a new list per transaction; no
    arguments, not awaited) run in order once that transaction committed,
    before the producers are answered, never after a rollback. One that raises
    is logged; the batch stays committed.
    """

    def __init__(
        self, pool: asyncpg.Pool, commit: Commit[R], *, max_delay: float = 0.003,
        max_rows: int = 1000, flushers: int = 2, max_pending_rows: int = 20000,
        name: str = "group-commit", with_after_commit: bool = False,
        own_transaction: bool = False,
    ) -> None:
        self._pool = pool
        self._commit_fn = commit
        self._with_after_commit = with_after_commit
        self._own_transaction = own_transaction
        self._name = name
        self._max_delay = max_delay
        self._max_rows = max_rows
        self._max_pending = max_pending_rows
        self._slots = asyncio.Semaphore(flushers)  # batches in flight, one connection each
        self._pending: deque[_Request] = deque()
        self._pending_rows = 0
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._space = asyncio.Event()
        self._flushing: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._closing = False
        self.stats = WriterStats()

    async def start(self) -> None:
        self._closing = False
        self._runner = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Commit what is already waiting, then stop; later ``submit`` calls raise."""
        self._closing = True
        self._wakeup.set()
        self._space.set()
        if self._runner is not None:
            await self._runner
            self._runner = None
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        st = self.stats
        log.info("event=writer_stopped writer=%s batches=%d rows=%d largest=%d mean=%.1f failed=%d"
                 " retried=%d", self._name, st.batches, st.rows, st.largest_batch,
                 st.rows / st.batches if st.batches else 0.0, st.failed_batches,
                 st.retried_batches)

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Commit ``items`` in the next batch; one result per item once committed.

        Raises the batch's exception if the transaction failed, or
        :class:`WriterClosed` if the writer is not running.
        """
        if self._closing or self._runner is None:
            raise WriterClosed(f"{self._name} is not running")
        if not items:
            return []
        while self._pending_rows >= self._max_pending:
            # Back-pressure: producers wait while the writer is this far behind.
            self._space.clear()
            await self._space.wait()
            if self._closing:
                raise WriterClosed(f"{self._name} is stopping")
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(list(items), future))
        self._pending_rows += len(items)
        self._wakeup.set()
        if self._pending_rows >= self._max_rows:
            self._full.set()
        return await future

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._pending_rows < self._max_rows and not self._closing:
                if self._flushing:
                    # A batch is being written: let this one grow meanwhile, until that
                    # write ends, max_rows are waiting, or max_delay has passed.
                    self._full.clear()
                    try:
                        async with asyncio.timeout(self._max_delay):
                            await self._full.wait()
                    except TimeoutError:
                        pass
                else:
                    # Idle: waiting would only add latency. One turn of the loop still
                    # gathers whatever the same burst of work is about to hand in.
                    await asyncio.sleep(0)
            # While every flusher is busy, the batch keeps growing (up to max_rows).
            await self._slots.acquire()
            batch = self._take()
            task = asyncio.create_task(self._flush(batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        rows = 0
        while self._pending:
            size = len(self._pending[0].msgs)
            if batch and rows + size > self._max_rows:
                break
            batch.append(self._pending.popleft())
            rows += size
        self._pending_rows -= rows
        self._space.set()
        return batch

    async def _flush(self, batch: list[_Request]) -> None:
        try:
            items = [m for req in batch for m in req.msgs]
            try:
                results = await self._commit(items)
            except Exception as exc:
                self.stats.failed_batches += 1
                if len(batch) == 1:
                    log.warning("event=batch_failed writer=%s rows=%d error=%r",
                                self._name, len(items), exc)
                    _fail(batch[0], exc)
                    return
                log.warning(
                    "event=batch_failed writer=%s rows=%d requests=%d error=%r;"
                    " retrying requests alone", self._name, len(items), len(batch), exc,
                )
                await self._one_by_one(batch)
                return
            start = 0
            for req in batch:
                end = start + len(req.msgs)
                _resolve(req, list(results[start:end]))
                start = end
        finally:
            self._slots.release()
            self._full.set()  # what gathered meanwhile need not wait out max_delay

    async def _one_by_one(self, batch: list[_Request]) -> None:
        for req in batch:
            try:
                results = await self._commit(req.msgs)
            except Exception as exc:
                _fail(req, exc)
            else:
                _resolve(req, list(results))

    async def _commit(self, items: list[T]) -> Sequence[R]:
        steps: AfterCommit = []  # a new list per attempt: a rolled-back one's steps never run
        async with self._pool.acquire() as conn:
            if self._own_transaction:
                results = await self._call(conn, items, steps)
            else:
                async with conn.transaction():
                    results = await self._call(conn, items, steps)
        self.stats.batches += 1
        self.stats.rows += len(items)
        self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        for step in steps:
            try:
                step()
            except Exception:
                # Committed is committed: the producers still get their results.
                log.exception("event=after_commit_failed writer=%s", self._name)
        return results

    async def _call(self, conn: asyncpg.Connection, items: list[T], steps: AfterCommit
                    ) -> Sequence[R]:
        if self._with_after_commit:
            results = await self._commit_fn(conn, items, after_commit=steps)
        else:
            results = await self._commit_fn(conn, items)
        if len(results) != len(items):
            raise RuntimeError(f"{self._name}: {len(results)} results for {len(items)} items")
        return results


def _resolve(req: _Request, outcomes: list) -> None:
    if not req.future.done():  # the producer may have been cancelled meanwhile
        req.future.set_result(outcomes)


def _fail(req: _Request, exc: BaseException) -> None:
    if not req.future.done():
        req.future.set_exception(exc)
