"""HTTP callbacks to clients: the persistent outbox, the bodies, their signature, and the
dispatcher that POSTs them in order per message, at least once
(``gateway/report/README.md``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg

from gateway.base.tasks import PollLoop
from gateway.store.messages import Message
from gateway.store.queue import backoff, new_worker_id

log = logging.getLogger("herald.callbacks")

SIGNATURE_HEADER = "X-Herald-Signature"


def format_event_time(dt: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSSxxx`` in UTC: milliseconds and a +00:00 offset."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


def transaction_id(message: Message) -> str:
    """The client's transaction id for ``message``: its own id, or for the SMS of a
    Viber→SMS cascade, the id of the Viber message it stands in for."""
    return str(message.fallback_for or message.id)


def dlr_payload(message: Message, at: datetime | None = None) -> dict:
    """The delivery-report body for ``message`` in its current status."""
    return {
        "transactionID": transaction_id(message),
        "dnis": message.destination,
        "status": str(message.status),
        "eventTime": format_event_time(at or message.updated_at),
        "channel": message.channel.upper(),
    }


def _encode(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def sign(key: bytes, body: bytes, t: int) -> str:
    """The signature header value for ``body`` sent at unix time ``t``."""
    mac = hmac.new(key, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    key: bytes, header: str, body: bytes, *, now: float | None = None, tolerance: float = 300
) -> bool:
    """Check a signature header: right MAC and ``t`` within ``tolerance`` seconds of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(key, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


async def enqueue(
    conn: asyncpg.Connection, *, kind: str, order_key: str, url: str, payload: dict,
    partner_id: int | None = None, api_key_id: int | None = None,
) -> int:
    """Add one callback to the outbox; returns its id."""
    return await conn.fetchval(
        """INSERT INTO callback_outbox (kind, order_key, url, body, partner_id, api_key_id)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        kind, order_key, url, _encode(payload), partner_id, api_key_id,
    )


async def enqueue_dlr(
    conn: asyncpg.Connection, message: Message, at: datetime | None = None
) -> int | None:
    """Queue the delivery report of ``message``'s current status, if it has a callback URL."""
    if not message.callback_url:
        return None
    return await enqueue(
        conn, kind="dlr", order_key=transaction_id(message), url=message.callback_url,
        payload=dlr_payload(message, at), partner_id=message.partner_id,
        api_key_id=message.api_key_id,
    )


async def enqueue_dlrs(
    conn: asyncpg.Connection, messages: Sequence[Message], at: datetime | None = None
) -> int:
    """:func:`enqueue_dlr` for many messages in one statement; the number queued.

    Rows are numbered in input order, which is the order they will be sent in
    for any one message.
    """
    wanted = [m for m in messages if m.callback_url]
    if not wanted:
        return 0
    await conn.execute(
        """INSERT INTO callback_outbox (kind, order_key, url, body, partner_id, api_key_id)
           SELECT 'dlr', order_key, url, body, partner_id, api_key_id
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
                WITH ORDINALITY AS u(order_key, url, body, partner_id, api_key_id, ord)
           ORDER BY ord""",
        [transaction_id(m) for m in wanted], [m.callback_url for m in wanted],
        [_encode(dlr_payload(m, at)) for m in wanted], [m.partner_id for m in wanted],
        [m.api_key_id for m in wanted],
    )
    return len(wanted)


def mo_body(
    *, transaction_id: str, dnis: str, text: str, channel: str, status: str = "DELIVERED",
    at: datetime | None = None, binary: bool = False, data_coding: int | None = None,
    udhi: bool = False,
) -> dict:
    """The MO callback body: ``text`` is the hex of the octets when ``binary``."""
    payload = {
        "transactionID": transaction_id,
        "dnis": dnis,
        "status": status,
        "eventTime": format_event_time(at or datetime.now(UTC)),
        "channel": channel.upper(),
        "message": text,
    }
    if binary:
        payload.update(encoding="binary", dataCoding=data_coding or 0, udhi=udhi)
    return payload


async def enqueue_mo(
    conn: asyncpg.Connection, *, url: str, transaction_id: str, dnis: str, text: str,
    channel: str, partner_id: int, api_key_id: int | None = None,
    status: str = "DELIVERED", at: datetime | None = None,
    binary: bool = False, data_coding: int | None = None, udhi: bool = False,
) -> int:
    """Queue an incoming message for the client (ordered with its message's reports);
    ``binary``: ``text`` is the hex of the octets, sent with their ``data_coding`` and UDHI."""
    payload = mo_body(transaction_id=transaction_id, dnis=dnis, text=text, channel=channel,
                      status=status, at=at, binary=binary, data_coding=data_coding, udhi=udhi)
    return await enqueue(
        conn, kind="mo", order_key=transaction_id, url=url, payload=payload,
        partner_id=partner_id, api_key_id=api_key_id,
    )


@dataclass(frozen=True, slots=True)
class CallbackJob:
    """A claimed outbox row."""

    id: int
    kind: str
    order_key: str
    url: str
    body: str
    partner_id: int | None
    api_key_id: int | None
    attempts: int
    created_at: datetime


_CLAIM = """
WITH picked AS (
    SELECT o.id FROM callback_outbox o
    WHERE o.state = 'pending' AND o.next_attempt_at <= now()
      AND NOT EXISTS (SELECT 1 FROM callback_outbox e
                      WHERE e.order_key = o.order_key AND e.state = 'pending' AND e.id < o.id)
    ORDER BY o.next_attempt_at, o.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE callback_outbox c SET
    claimed_by = $1, attempts = c.attempts + 1,
    next_attempt_at = now() + make_interval(secs => $3)
FROM picked WHERE c.id = picked.id
RETURNING c.id, c.kind, c.order_key, c.url, c.body, c.partner_id, c.api_key_id, c.attempts,
          c.created_at
"""


async def claim(
    conn: asyncpg.Connection, worker_id: str, limit: int, lease: float = 60.0
) -> list[CallbackJob]:
    """Lease up to ``limit`` due callbacks, at most one (the oldest) per order key."""
    records = await conn.fetch(_CLAIM, worker_id, limit, float(lease))
    return sorted((CallbackJob(**dict(r)) for r in records), key=lambda j: j.id)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST came to."""

    ok: bool
    status: int | None
    error: str | None


KeyResolver = Callable[[CallbackJob], Awaitable[bytes | None]]


class CallbackDispatcher(PollLoop):
    """Drains the outbox (``gateway/report/README.md``). One per process is enough."""

    name = "callbacks"  # in /healthz

    def __init__(
        self, pool: asyncpg.Pool, key_for: KeyResolver, *,
        batch: int = 100, poll_interval: float = 1.0, request_timeout: float = 10.0,
        max_age: float = 24 * 3600.0, base_delay: float = 2.0, max_delay: float = 600.0,
        lease: float = 60.0, worker_id: str | None = None,
        rand: Callable[[], float] = random.random, clock: Callable[[], float] = time.time,
    ) -> None:
        # Stopping lets the batch in hand finish, bounded by the request timeout; rows of a
        # batch cut short come back when their lease ends.
        super().__init__(batch=batch, poll_interval=poll_interval,
                         stop_timeout=request_timeout + 5)
        self._pool = pool
        self._key_for = key_for
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._max_age = max_age
        self._base = base_delay
        self._cap = max_delay
        self._lease = lease
        self._rand = rand
        self._clock = clock
        self.worker_id = worker_id or new_worker_id()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self) -> int:
        """Claim one batch, POST it, record the outcomes; the number of rows handled."""
        async with self._pool.acquire() as conn:
            jobs = await claim(conn, self.worker_id, self.batch, self._lease)
        if not jobs:
            return 0
        attempts = await asyncio.gather(*(self._post(job) for job in jobs))
        async with self._pool.acquire() as conn, conn.transaction():
            for job, attempt in zip(jobs, attempts, strict=True):
                await self._record(conn, job, attempt)
        return len(jobs)

    async def _post(self, job: CallbackJob) -> Attempt:
        body = job.body.encode()
        headers = {"Content-Type": "application/json"}
        try:
            key = await self._key_for(job)
            if key:
                headers[SIGNATURE_HEADER] = sign(key, body, int(self._clock()))
            session = self._session or aiohttp.ClientSession(timeout=self._timeout)
            try:
                async with session.post(job.url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = 200 <= resp.status < 300
                    return Attempt(ok, resp.status, None if ok else f"HTTP {resp.status}")
            finally:
                if session is not self._session:
                    await session.close()
        except Exception as exc:  # connection refused, timeout, bad URL: all retried
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])

    async def _record(self, conn: asyncpg.Connection, job: CallbackJob, attempt: Attempt) -> None:
        if attempt.ok:
            await conn.execute(
                """UPDATE callback_outbox SET state = 'delivered', finished_at = now(),
                       last_status = $3, last_error = NULL, claimed_by = NULL
                   WHERE id = $1 AND claimed_by = $2""",
                job.id, self.worker_id, attempt.status,
            )
            return
        delay = backoff(job.attempts - 1, base=self._base, cap=self._cap, rand=self._rand)
        age = self._clock() - job.created_at.timestamp()
        if age + delay > self._max_age:
            log.warning("event=callback_gave_up id=%s url=%s attempts=%s error=%s",
                        job.id, job.url, job.attempts, attempt.error)
            await conn.execute(
                """UPDATE callback_outbox SET state = 'gave_up', finished_at = now(),
                       last_status = $3, last_error = $4, claimed_by = NULL
                   WHERE id = $1 AND claimed_by = $2""",
                job.id, self.worker_id, attempt.status, attempt.error,
            )
            return
        await conn.execute(
            """UPDATE callback_outbox SET next_attempt_at = now() + make_interval(secs => $5),
                   last_status = $3, last_error = $4, claimed_by = NULL
               WHERE id = $1 AND claimed_by = $2""",
            job.id, self.worker_id, attempt.status, attempt.error, float(delay),
        )


async def purge_finished(conn: asyncpg.Connection, older_than_days: int = 30) -> int:
    """Delete delivered and given-up rows older than the given age; the count deleted."""
    result = await conn.execute(
        """DELETE FROM callback_outbox WHERE state <> 'pending'
           AND finished_at < now() - make_interval(days => $1)""",
        older_than_days,
    )
    return int(result.split()[-1])
