"""Group commit: many producers, one transaction per few milliseconds.

A message is acknowledged to its sender (SMPP ``submit_sm_resp``, the HTTP
answer) only once its row is committed. Committing each message alone costs a
WAL flush per message; committing them together costs one per batch. While a
batch is being written the writer collects what producers hand it until that
write ends (or ``max_rows`` are waiting, or ``max_delay`` seconds passed); when
it is idle it starts at once, so a quiet system pays no batching delay. It writes the batch
in one transaction, and then resolves every producer's future. A batch that fails fails its futures: no
message is acknowledged without its row.

Inside the batch transaction, in this order:

1. ``before_insert(conn, msgs)`` (optional): the billing hook. It returns one
   outcome per message, in order: the message to store (typically with
   ``status=BILLED``, ``cost`` and ``charge_ref`` filled in), or a
   :class:`~config.errors.HeraldError` that rejects that message alone (e.g.
   insufficient balance). Charging and storing therefore commit together.
   It may instead return :class:`Charged` (the outcomes and a ``finish``
   step), when part of its work must run last in the transaction.
2. The accepted messages are written, and those with a non-empty ``route``
   put in the send queue, claimable from ``scheduled_for`` when set
   (:func:`gateway.store.queue.insert_and_enqueue`: one statement for a small batch,
   two COPYs for a large one).
3. ``after_insert(conn, accepted)`` (optional), e.g. campaign counters.
4. ``finish.apply(conn)`` when the hook returned one: the billing hook's
   ledger and charge rows and its debit of the balances (one statement for
   one payer), taken last so that their row locks are held only until the
   commit. If it raises :class:`~billing.errors.StaleSnapshot` (a balance
   moved under the unlocked pricing), the transaction is rolled back and the
   batch written again, in a new transaction, with
   ``before_insert(conn, msgs, careful=True)``, which charges under the lock
   from the start (the engine's ``retry_on`` option, below; counted in
   ``stats.retried_batches``).

The usual batch needs no transaction block at all. A hook that says it only
reads (``reads_only = True``, as :class:`gateway.accept.pipeline.BillingHook` does
when not careful) runs before any transaction; when its ``finish`` can write
everything in one statement (``finish.single_statement``: one payer, no pack),
there is no ``after_insert`` and the batch is small enough for one statement
(:func:`gateway.store.queue.store_items`), the messages, their queue rows, the
ledger, the charges and the guarded debit are one statement that commits
alone: two round trips for the batch (price, write) instead of five (BEGIN,
price, store, charge, COMMIT). A failed guard aborts that statement whole.

If the batch transaction fails and it held more than one producer's request,
each request is retried alone in its own transaction, so one producer's bad
data (or a charge that violates a constraint) does not fail its neighbours.
Requests are never split: a producer's messages commit all together or not at all.

Public API::

    writer = GroupCommitWriter(pool, before_insert=charge, max_delay=0.003)
    await writer.start()
    outcomes = await writer.persist([NewMessage(...), ...])  # list[NewMessage | HeraldError]
    await writer.stop()   # flushes what is waiting, then refuses new work

The batching engine itself is :class:`GroupCommit` ``(pool, commit, ...)``:
``await engine.submit(items) -> list[result]`` for any ``commit(conn, items)``
that returns one result per item (delivery receipts use it too). Three options
add to what happens around each transaction (the first attempt of a batch, or
of a request retried alone):

* ``retry_on=(SomeError, ...)``, ``retry_commit=other``: when ``commit`` raises
  one of these, the transaction is rolled back (none of its rows remain) and the
  same items are written once more by ``other(conn, items)`` in a new
  transaction (``commit`` itself when ``retry_commit`` is not given). If that
  fails too, the batch fails as any other. Counted in ``stats.retried_batches``.
* ``own_transaction=True``: ``commit`` gets a connection outside any
  transaction and opens its own, or writes with statements that commit alone
  (the message writer).
* ``with_after_commit=True``: ``commit`` (and ``retry_commit``) is called as
  ``commit(conn, items, after_commit=steps)``, ``steps`` being a new list for each
  transaction. The callables it appends there (no arguments, not awaited) run in
  order once that transaction has committed, before the producers are answered,
  and never for an attempt that rolled back. One that raises is logged; the
  batch stays committed and its producers get their results.

A producer cancelled while waiting may still see its messages committed (the
batch is already on its way); callers that retry must tolerate that.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, NamedTuple, Protocol, TypeVar

import asyncpg

from billing.errors import StaleSnapshot
from config.errors import HeraldError
from gateway.store import queue
from gateway.store.messages import NewMessage

log = logging.getLogger("herald.commit")

T = TypeVar("T")
R = TypeVar("R")

Outcome = NewMessage | HeraldError


class Finish(Protocol):
    """The billing hook's last step (:class:`billing.charging.PendingDebit`)."""

    @property
    def single_statement(self) -> bool:
        """True when ``apply(conn, along=...)`` does it all in one statement."""

    async def apply(self, conn: asyncpg.Connection, *, along: tuple[str, Sequence[object]] | None = None
                    ) -> None:
        """Write and take, last in the transaction; or in one statement with the ``along``
        WITH items (the messages and queue rows), outside a transaction."""


class Charged(NamedTuple):
    """A ``before_insert`` answer whose last step runs after the rows are written."""

    outcomes: Sequence[Outcome]
    finish: Finish


# (conn, msgs) -> outcomes or Charged; called with careful=True when retried after a StaleSnapshot
BeforeInsert = Callable[..., Awaitable["Sequence[Outcome] | Charged"]]
AfterInsert = Callable[[asyncpg.Connection, list[NewMessage]], Awaitable[None]]

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
    retried_batches: int = 0   # written again by retry_commit after a retry_on error


@dataclass(slots=True)
class _Request:
    msgs: list
    future: asyncio.Future


class GroupCommit(Generic[T, R]):
    """The batching engine: ``submit(items)`` from many tasks, ``commit(conn, batch)`` rarely.

    ``commit`` runs inside one transaction per batch and returns one result per
    item, in order. Used for messages (:class:`GroupCommitWriter`), send outcomes
    and delivery receipts (:mod:`gateway.send.delivery`).

    ``retry_on`` / ``retry_commit``: errors of ``commit`` after which the batch is
    written once more, by ``retry_commit`` (default: ``commit``) in a new
    transaction. ``with_after_commit``: pass ``commit`` an ``after_commit`` list
    of steps to run once its transaction committed. See the module doc.
    """

    def __init__(
        self, pool: asyncpg.Pool, commit: Commit[R], *, max_delay: float = 0.003,
        max_rows: int = 1000, flushers: int = 2, max_pending_rows: int = 20000,
        name: str = "group-commit", retry_on: tuple[type[BaseException], ...] = (),
        retry_commit: Commit[R] | None = None, with_after_commit: bool = False,
        own_transaction: bool = False,
    ) -> None:
        if retry_commit is not None and not retry_on:
            raise ValueError("retry_commit needs retry_on")
        self._pool = pool
        self._commit_fn = commit
        self._retry_on = retry_on
        self._retry_fn = retry_commit or commit
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
        """Write ``items`` in one transaction, and once more in another after a ``retry_on`` error."""
        try:
            return await self._transaction(items, self._commit_fn)
        except self._retry_on as exc:  # an empty tuple catches nothing
            self.stats.retried_batches += 1
            log.info("event=batch_retried writer=%s rows=%d error=%r; writing it again",
                     self._name, len(items), exc)
            return await self._transaction(items, self._retry_fn)

    async def _transaction(self, items: list[T], commit: Commit[R]) -> Sequence[R]:
        steps: AfterCommit = []  # a new list per attempt: a rolled-back one's steps never run
        async with self._pool.acquire() as conn:
            if self._own_transaction:
                results = await self._call(commit, conn, items, steps)
            else:
                async with conn.transaction():
                    results = await self._call(commit, conn, items, steps)
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

    async def _call(self, commit: Commit[R], conn: asyncpg.Connection, items: list[T],
                    steps: AfterCommit) -> Sequence[R]:
        if self._with_after_commit:
            results = await commit(conn, items, after_commit=steps)
        else:
            results = await commit(conn, items)
        if len(results) != len(items):
            raise RuntimeError(f"{self._name}: {len(results)} results for {len(items)} items")
        return results


class GroupCommitWriter(GroupCommit[NewMessage, Outcome]):
    """Stores messages through :class:`GroupCommit` (see the module doc)."""

    def __init__(
        self, pool: asyncpg.Pool, *,
        before_insert: BeforeInsert | None = None,
        after_insert: AfterInsert | None = None,
        max_delay: float = 0.003,
        max_rows: int = 1000,
        flushers: int = 2,
        max_pending_rows: int = 20000,
    ) -> None:
        # A StaleSnapshot from the unlocked pricing: charge again, under the lock from the start.
        super().__init__(
            pool, self._store, max_delay=max_delay, max_rows=max_rows, flushers=flushers,
            max_pending_rows=max_pending_rows, name="message-writer",
            retry_on=(StaleSnapshot,), retry_commit=partial(self._store, careful=True),
            own_transaction=True,
        )
        self._before = before_insert
        self._after = after_insert

    async def persist(self, msgs: Sequence[NewMessage]) -> list[Outcome]:
        """Store ``msgs`` in the next batch; one outcome per message once committed."""
        return await self.submit(msgs)

    async def _store(self, conn: asyncpg.Connection, msgs: list[NewMessage], *, careful: bool = False
                     ) -> Sequence[Outcome]:
        if careful or (self._before is not None and not getattr(self._before, "reads_only", False)):
            # A hook that writes (or charges under the payers' lock): in the transaction from the start.
            async with conn.transaction():
                return await self._store_in(conn, msgs, careful=careful)
        finish = None
        if self._before is not None:
            # Only reads and prices (reads_only), so the transaction need not be open yet.
            outcomes, finish = self._checked(msgs, await self._before(conn, msgs))
        else:
            outcomes = msgs
        accepted = [o for o in outcomes if isinstance(o, NewMessage)]
        if self._after is None and (finish is None or finish.single_statement):
            along = queue.store_items(accepted)
            if finish is None and (along is not None or not accepted):
                await queue.insert_and_enqueue(conn, accepted, items=along)  # one statement, or nothing
                return outcomes
            if along is not None and finish is not None:
                # The usual batch: messages, queue rows, ledger, charges and debit in one
                # statement that commits alone; a failed guard undoes all of it.
                await finish.apply(conn, along=along)
                return outcomes
        async with conn.transaction():
            await self._write(conn, accepted, finish)
        return outcomes

    async def _store_in(self, conn: asyncpg.Connection, msgs: list[NewMessage], *, careful: bool
                        ) -> Sequence[Outcome]:
        finish = None
        if self._before is not None:
            got = await (self._before(conn, msgs, careful=True) if careful else self._before(conn, msgs))
            outcomes, finish = self._checked(msgs, got)
        else:
            outcomes = msgs
        await self._write(conn, [o for o in outcomes if isinstance(o, NewMessage)], finish)
        return outcomes

    async def _write(self, conn: asyncpg.Connection, accepted: list[NewMessage], finish: Finish | None
                     ) -> None:
        """Rows, ``after_insert``, then billing's last step, in the caller's transaction."""
        await queue.insert_and_enqueue(conn, accepted)
        if self._after is not None and accepted:
            await self._after(conn, accepted)
        if finish is not None:
            await finish.apply(conn)

    @staticmethod
    def _checked(msgs: list[NewMessage], got: Sequence[Outcome] | Charged
                 ) -> tuple[Sequence[Outcome], Finish | None]:
        outcomes, finish = got if isinstance(got, Charged) else (got, None)
        if len(outcomes) != len(msgs):
            raise RuntimeError(f"before_insert returned {len(outcomes)} outcomes for {len(msgs)} messages")
        return outcomes, finish


def _resolve(req: _Request, outcomes: list[Outcome]) -> None:
    if not req.future.done():  # the producer may have been cancelled meanwhile
        req.future.set_result(outcomes)


def _fail(req: _Request, exc: BaseException) -> None:
    if not req.future.done():
        req.future.set_exception(exc)
