"""Delivery: send workers between the send queue and a transport, and the receipt writer
for what vendors report back; each outcome and receipt commits with its effects.
How answers map to statuses: ``gateway/send/README.md``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import asyncpg

from gateway.base.ratelimit import TokenBucket
from gateway.base.tasks import PollLoop
from gateway.report.status import LocalOutbox, status_changed
from gateway.store import queue
from gateway.store.commit import AfterCommit, GroupCommit
from gateway.store.messages import (
    FINAL,
    Event,
    EventUpdate,
    Message,
    ReceiptUpdate,
    SentUpdate,
    apply_events,
    apply_receipt,
    apply_receipts,
    mark_sent_many,
)

log = logging.getLogger("herald.delivery")


@dataclass(frozen=True, slots=True)
class Accepted:
    vendor_message_id: str                  # as given in submit_sm_resp
    keys: tuple[str, ...] | None = None     # exact match keys, when the id format is known


@dataclass(frozen=True, slots=True)
class Retry:
    error: str
    delay: float | None = None  # None: exponential backoff on the attempt number


@dataclass(frozen=True, slots=True)
class Failover:
    error: str
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    error: str
    error_code: str | None = None


SendResult = Accepted | Retry | Failover | Rejected
Send = Callable[[queue.Claim], Awaitable[SendResult]]
# ``send`` in two steps: returns once the message is written, with the future of its answer.
Start = Callable[[queue.Claim], Awaitable["asyncio.Future[SendResult]"]]


async def record_receipt(
    conn: asyncpg.Connection, vendor_id: int, receipt_message_id: str, event: Event | str, *,
    keys: tuple[str, ...] | None = None, at: datetime | None = None, error_code: str | None = None,
    error_text: str | None = None,
) -> Message | None:
    """Apply a delivery receipt and its effects together; the message if it moved."""
    async with conn.transaction():
        message = await apply_receipt(
            conn, vendor_id, receipt_message_id, event, keys=keys, at=at, error_code=error_code,
            error_text=error_text,
        )
        if message is not None:
            await status_changed(conn, [message])
    return message


@dataclass(frozen=True, slots=True)
class _Expired:
    pass


@dataclass(frozen=True, slots=True)
class _AlreadyFinal:
    pass


_Outcome = tuple[queue.Claim, "SendResult | _Expired | _AlreadyFinal"]


class ReceiptWriter(GroupCommit[ReceiptUpdate, "Message | None"]):
    """Delivery receipts from many binds, applied in grouped transactions.

    ``await writer.record(ReceiptUpdate(...))`` returns the message if its status
    moved (after the commit, with its effects written), else None. Answer the
    vendor's ``deliver_sm`` after it returns, so an acknowledged receipt is
    never lost. ``outbox``: this process's SMPP outbox dispatcher, if any.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, outbox: LocalOutbox | None = None,
        max_delay: float = 0.003, max_rows: int = 1000, flushers: int = 2,
    ) -> None:
        super().__init__(pool, self._apply, max_delay=max_delay, max_rows=max_rows,
                         flushers=flushers, name="receipt-writer", with_after_commit=True)
        self._outbox = outbox

    async def record(self, receipt: ReceiptUpdate) -> Message | None:
        (result,) = await self.submit([receipt])
        return result

    async def _apply(
        self, conn: asyncpg.Connection, receipts: list[ReceiptUpdate], *, after_commit: AfterCommit,
    ) -> list[Message | None]:
        moved = await apply_receipts(conn, receipts)
        await status_changed(conn, [m for m in moved if m is not None], outbox=self._outbox,
                             after_commit=after_commit)
        return moved


class SendWorker(PollLoop):
    """Claims queued messages and hands them to ``send`` (``gateway/send/README.md``).

    Outcomes are recorded through a :class:`~gateway.store.commit.GroupCommit`, so the
    answers of many sends share one transaction without any send waiting for
    the slowest of its batch.
    """

    def __init__(
        self, pool: asyncpg.Pool, send: Send, *, vendor_id: int | None = None,
        bucket: TokenBucket | None = None, batch: int = 50, concurrency: int | None = None,
        lease: float = 30.0, poll_interval: float = 0.5, max_attempts: int = 5,
        backoff_base: float = 1.0, backoff_cap: float = 300.0, worker_id: str | None = None,
        outbox: LocalOutbox | None = None, start: Start | None = None,
    ) -> None:
        """``start``: ``send`` in two steps (see :meth:`_run_started`), for transports that
        can write a message and hand back the future of its answer; ``send`` still
        serves :meth:`run_once` when the worker is not started. ``outbox``: this
        process's SMPP outbox dispatcher, if any."""
        super().__init__(batch=batch, poll_interval=poll_interval)
        self.name = f"send-worker-{vendor_id}"
        self._pool = pool
        self._send = send
        self._start = start if concurrency is None or concurrency >= batch else None
        self._vendor = vendor_id
        self._bucket = bucket
        self._limit = asyncio.Semaphore(concurrency or batch)
        self._lease = lease
        self._max_attempts = max_attempts
        self._base = backoff_base
        self._cap = backoff_cap
        self._outbox = outbox
        self.worker_id = worker_id or queue.new_worker_id()
        self._outcomes: GroupCommit[_Outcome, None] = GroupCommit(
            pool, self._record, max_delay=0.002, max_rows=1000, name="send-outcomes",
            with_after_commit=True)

    async def start(self) -> None:
        await self._outcomes.start()
        await super().start()

    async def stop(self) -> None:
        """Finish the batch in hand, then stop."""
        await super().stop()
        await self._outcomes.stop()

    async def run_once(self) -> int:
        """Claim one batch, send it, record the outcomes; the number of messages handled.

        Usable without ``start()`` (tests, tools): outcomes are then recorded directly.
        """
        async with self._pool.acquire() as conn:
            claims = await queue.claim(conn, self.worker_id, self.batch, self._vendor,
                                       lease=self._lease)
        if claims and self._start is not None and self._task is not None:
            await self._run_started(claims)
        elif claims:
            outcomes = await asyncio.gather(*(self._handle(c) for c in claims))
            if self._task is None:  # not started: record here, in one transaction
                async with self._pool.acquire() as conn, conn.transaction():
                    await self._record(conn, list(outcomes), after_commit=None)
        return len(claims)

    async def _handle(self, claim: queue.Claim) -> _Outcome:
        outcome = (claim, await self._attempt(claim))
        if self._task is not None:
            try:
                await self._outcomes.submit([outcome])
            except Exception:
                # Not recorded: the lease runs out and the message is claimed again.
                log.exception("event=send_outcome_lost message=%s", claim.message_id)
        return outcome

    async def _run_started(self, claims: list[queue.Claim]) -> None:
        """:meth:`run_once`'s sending without a task per message.

        Each message is written in turn (waiting only when the transport's window
        or throttle makes it); the answers arrive as callbacks, and the outcomes
        that are ready together go to the group commit as one request. Returns once
        every outcome of the batch is recorded (or lost: the lease brings it back).
        """
        loop = asyncio.get_running_loop()
        ready: list[_Outcome] = []
        recording: list[asyncio.Task] = []

        def flush() -> None:
            if ready:
                recording.append(loop.create_task(self._submit_outcomes(ready[:])))
                ready.clear()

        def add(outcome: _Outcome) -> None:
            if not ready:
                loop.call_soon(flush)
            ready.append(outcome)

        def answered(claim: queue.Claim, future: asyncio.Future[SendResult]) -> None:
            if future.cancelled():
                result: SendResult = Retry("send cancelled")
            elif (exc := future.exception()) is not None:
                result = self._send_failed(claim, exc)
            else:
                result = future.result()
            add((claim, self._settled(claim, result)))

        waiting: list[asyncio.Future[SendResult]] = []
        for claim in claims:
            early = self._not_to_send(claim)
            if early is not None:
                add((claim, early))
                continue
            try:
                if self._bucket is not None:
                    await self._bucket.acquire()
                future = await self._start(claim)  # type: ignore[misc]
            except Exception as exc:
                add((claim, self._settled(claim, self._send_failed(claim, exc))))
                continue
            future.add_done_callback(partial(answered, claim))
            waiting.append(future)
        if waiting:
            await asyncio.wait(waiting)
        flush()  # whatever the last answers left, without waiting for the scheduled flush
        if recording:
            await asyncio.gather(*recording)

    async def _submit_outcomes(self, outcomes: list[_Outcome]) -> None:
        try:
            await self._outcomes.submit(outcomes)
            return
        except Exception:
            if len(outcomes) == 1:
                # Not recorded: the lease runs out and the message is claimed again.
                log.exception("event=send_outcome_lost message=%s", outcomes[0][0].message_id)
                return
        # One message's trouble must not send its neighbours again: each alone, as the
        # task-per-message path records them.
        for outcome in outcomes:
            await self._submit_outcomes([outcome])

    def _send_failed(self, claim: queue.Claim, exc: BaseException) -> Retry:
        log.warning("event=send_error message=%s vendor=%s error=%r",
                    claim.message_id, claim.vendor_id, exc)
        return Retry(f"{type(exc).__name__}: {exc}"[:500])

    def _settled(self, claim: queue.Claim, result: SendResult) -> SendResult:
        if isinstance(result, Retry) and claim.attempt >= self._max_attempts:
            return Failover(f"{result.error} (after {claim.attempt} attempts)")
        return result

    @staticmethod
    def _not_to_send(claim: queue.Claim) -> _Expired | _AlreadyFinal | None:
        message = claim.message
        assert message is not None
        if message.status in FINAL:
            return _AlreadyFinal()
        if message.valid_until is not None and message.valid_until <= datetime.now(UTC):
            return _Expired()
        return None

    async def _attempt(self, claim: queue.Claim) -> SendResult | _Expired | _AlreadyFinal:
        early = self._not_to_send(claim)
        if early is not None:
            return early
        async with self._limit:
            if self._bucket is not None:
                await self._bucket.acquire()
            try:
                result = await self._send(claim)
            except Exception as exc:
                result = self._send_failed(claim, exc)
        return self._settled(claim, result)

    async def _record(self, conn: asyncpg.Connection, outcomes: list[_Outcome], *,
                      after_commit: AfterCommit | None) -> list[None]:
        """Write a batch of outcomes: queue rows, statuses, and what the changes cause."""
        worker = self.worker_id
        sent = [(c, r) for c, r in outcomes if isinstance(r, Accepted)]
        finals: list[EventUpdate] = []
        drop: list[uuid.UUID] = []
        for claim, result in outcomes:
            if isinstance(result, Retry):
                delay = result.delay
                if delay is None:
                    delay = queue.backoff(claim.attempt - 1, base=self._base, cap=self._cap)
                await queue.retry_later(conn, worker, claim.message_id, delay, result.error)
            elif isinstance(result, Failover):
                if await queue.failover(conn, worker, claim.message_id, result.error) is None:
                    finals.append(EventUpdate(claim.message_id, Event.FAILED, None,
                                              result.error_code, result.error))
            elif isinstance(result, Rejected):
                finals.append(EventUpdate(claim.message_id, Event.FAILED, None,
                                          result.error_code, result.error))
            elif isinstance(result, _Expired):
                finals.append(EventUpdate(claim.message_id, Event.EXPIRED, None, None,
                                          "validity period expired"))
            elif isinstance(result, _AlreadyFinal):
                drop.append(claim.message_id)
        ours = await queue.complete_many(
            conn, worker, [c.message_id for c, _ in sent] + [f.message_id for f in finals] + drop
        )
        moved = await mark_sent_many(conn, [
            SentUpdate(c.message_id, c.vendor_id, r.vendor_message_id, r.keys)
            for c, r in sent if c.message_id in ours
        ])
        moved += await apply_events(conn, [f for f in finals if f.message_id in ours])
        await status_changed(conn, [m for m in moved if m is not None], outbox=self._outbox,
                             after_commit=after_commit)
        return [None] * len(outcomes)
