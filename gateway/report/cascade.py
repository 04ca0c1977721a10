"""The Viber→SMS cascade job: takes the Viber messages that fell due, ends those never
sent, and submits each one's SMS exactly once (``gateway/report/README.md``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.accept.pipeline import Accepted, Pipeline, Submission
from gateway.base import tasks
from gateway.base.app import task_health
from gateway.report.fallback import NOT_SENT, fallback_due, fallback_reason, forget_due
from gateway.report.status import status_changed
from gateway.store.messages import (
    IN_FLIGHT,
    Event,
    EventUpdate,
    Message,
    Status,
    apply_events,
    message_columns,
)

log = logging.getLogger("herald.cascade")

_COLUMNS = message_columns("m")

# Due rows, locked so that two processes do not both read the same ones; the caller
# deletes them in the same transaction.
_DUE = f"""
SELECT {_COLUMNS} FROM viber_cascade_due d JOIN messages m ON m.id = d.viber_message_id
WHERE d.due_at <= $1
ORDER BY d.due_at
LIMIT $2
FOR UPDATE OF d SKIP LOCKED
"""

_RELOOK = """
UPDATE viber_cascade_due d SET due_at = u.due_at
FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, due_at)
WHERE d.viber_message_id = u.id
"""

# Never sent: out of the queue unless a send worker holds the row (it may be on the wire).
# A worker claiming at the same moment either waits for this delete (and skips the row,
# SKIP LOCKED) or holds the row first (then claimed_by is set and nothing is deleted).
_DEQUEUE = """
DELETE FROM send_queue WHERE message_id = ANY($1::uuid[]) AND claimed_by IS NULL
RETURNING message_id
"""

_UNSENT = frozenset({Status.PREPARED, Status.BILLED})

_CLAIM = """
INSERT INTO viber_cascade (viber_message_id, partner_id, reason, claimed_until)
SELECT id, partner_id, reason, $4::timestamptz + make_interval(secs => $5)
FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS u(id, partner_id, reason)
ORDER BY id
ON CONFLICT (viber_message_id) DO NOTHING
RETURNING viber_message_id
"""

_TAKE_STALE = f"""
WITH stale AS (
    SELECT viber_message_id FROM viber_cascade
    WHERE state = 'claimed' AND claimed_until < $1
    ORDER BY claimed_until
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE viber_cascade c SET claimed_until = $1 + make_interval(secs => $2),
        attempts = c.attempts + 1, updated_at = now()
    FROM stale WHERE c.viber_message_id = stale.viber_message_id
    RETURNING c.viber_message_id, c.created_at
)
SELECT {_COLUMNS}, taken.created_at AS claimed_at
FROM taken JOIN messages m ON m.id = taken.viber_message_id
"""

# The SMS of an earlier claim, if its process got as far as storing it.
_FIND_SMS = """
SELECT id FROM messages
WHERE partner_id = $1 AND created_at >= $2 AND fallback_for = $3 AND channel = 'sms'
LIMIT 1
"""

_SENT = """
UPDATE viber_cascade SET state = 'sent', sms_message_id = $2, error = NULL, updated_at = now()
WHERE viber_message_id = $1 AND state = 'claimed'
"""

_REFUSED = """
UPDATE viber_cascade SET state = 'refused', error = $2, updated_at = now()
WHERE viber_message_id = $1 AND state = 'claimed'
"""


def sms_submission(message: Message) -> Submission:
    """The SMS standing in for the Viber ``message``: same account, sender, text and callbacks."""
    return Submission(
        partner_id=message.partner_id, origin=message.origin, sender=message.sender,
        destination=message.destination, text=message.text, channel="sms",
        user_id=message.user_id, api_key_id=message.api_key_id, accept_mo=message.accept_mo,
        label=message.label, campaign_id=message.campaign_id,
        fallback_for=message.id, registered_delivery=message.registered_delivery,
        callback_url=message.callback_url, valid_until=message.valid_until,
    )


@dataclass(frozen=True, slots=True)
class CascadeResult:
    sent: int = 0        # SMS submitted and accepted by the pipeline
    refused: int = 0     # the pipeline refused the SMS (balance, route, sender…)
    recovered: int = 0   # stale claims whose SMS already existed
    unsent: int = 0      # Viber messages taken out of the send queue, never sent


async def linked_sms(conn: asyncpg.Connection | asyncpg.Pool,
                     viber_message_id: uuid.UUID) -> uuid.UUID | None:
    """The SMS a Viber message fell back to, if any."""
    return await conn.fetchval(
        "SELECT sms_message_id FROM viber_cascade WHERE viber_message_id = $1", viber_message_id)


async def _end_unsent(conn: asyncpg.Connection, messages: Sequence[Message],
                      now: datetime) -> int:
    """Due cascade messages never sent: out of the send queue unless a worker holds them,
    FAILED, refunded, their callback queued (the caller's transaction). How many."""
    if not messages:
        return 0
    taken = [r["message_id"] for r in await conn.fetch(_DEQUEUE, [m.id for m in messages])]
    if not taken:
        return 0
    moved = [m for m in await apply_events(
        conn, [EventUpdate(i, Event.FAILED, now, None, NOT_SENT) for i in taken]) if m is not None]
    await status_changed(conn, moved)  # FAILED: its callback, every level's charge given back
    log.info("event=cascade_unsent count=%s", len(moved))
    return len(moved)


class CascadeJob:
    """Finds Viber messages due to fall back and sends their SMS (``gateway/report/README.md``)."""

    name = "viber_cascade"  # in /healthz

    def __init__(
        self, pool: asyncpg.Pool, pipeline: Pipeline, *, interval: float | None = None,
        batch: int = 200, lease: float = 120.0,
        owns_pipeline: bool = False,
    ) -> None:
        """``interval``: seconds between passes; None takes the process's
        ``HERALD_VIBER_CASCADE_POLL`` from the pipeline's settings."""
        self.pool = pool
        self.pipeline = pipeline
        self.interval = pipeline.settings.viber_cascade_poll if interval is None else interval
        self.batch = batch
        self.lease = lease
        self._owns_pipeline = owns_pipeline
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._owns_pipeline:
            await self.pipeline.start()
        self._task = asyncio.create_task(self._loop(), name="viber-cascade")

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        self._task = None
        if self._owns_pipeline:
            await self.pipeline.stop()

    def health(self) -> str:
        """``"ok"`` while the cascade's loop runs (``/healthz``)."""
        return task_health(self._task)

    async def _loop(self) -> None:
        while True:
            try:
                result = await self.run_once()
                busy = result.sent + result.refused + result.recovered >= self.batch
            except Exception:
                log.exception("event=cascade_failed")
                busy = False
            if not busy:
                await asyncio.sleep(self.interval)

    async def run_once(self, now: datetime | None = None) -> CascadeResult:
        """One pass: stale claims first, then newly due messages (up to ``batch`` each)."""
        now = now or datetime.now(UTC)
        recovered, retried = await self._take_stale(now)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_DUE, now, self.batch)
            messages = [Message.from_row(r) for r in rows]
            due = [(m, reason) for m in messages
                   if (reason := fallback_reason(m, now)) is not None]
            unsent = await _end_unsent(conn, [m for m, _ in due if m.status in _UNSENT], now)
            claimed: set[uuid.UUID] = set()
            if due:
                claimed = {r["viber_message_id"] for r in await conn.fetch(
                    _CLAIM, [m.id for m, _ in due], [m.partner_id for m, _ in due],
                    [reason for _, reason in due], now, float(self.lease))}
            # Claimed or not needed (delivered, seen, already claimed): done with either way.
            # Pending and not yet due (a schedule moved later): looked at again when due.
            later = {m.id: at for m in messages
                     if m.status in IN_FLIGHT and fallback_reason(m, now) is None
                     and (at := fallback_due(m)) is not None}
            if later:
                await conn.execute(_RELOOK, list(later), list(later.values()))
            await forget_due(conn, [m.id for m in messages if m.id not in later])
        mine = retried + [m for m, _ in due if m.id in claimed]
        sent, refused = await self._submit(mine)
        return CascadeResult(sent, refused, recovered, unsent)

    async def _take_stale(self, now: datetime) -> tuple[int, list[Message]]:
        """Take over claims whose process died; (settled because the SMS exists, to resubmit)."""
        recovered = 0
        resubmit: list[Message] = []
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_TAKE_STALE, now, float(self.lease), self.batch)
            for row in rows:
                message = Message.from_row(row)
                # The SMS is created after the claim: look from a little before it (clock skew).
                existing = await conn.fetchval(
                    _FIND_SMS, message.partner_id, row["claimed_at"] - timedelta(minutes=5),
                    message.id)
                if existing is not None:
                    await conn.execute(_SENT, message.id, existing)
                    recovered += 1
                else:
                    resubmit.append(message)
        if rows:
            log.warning("event=cascade_stale_claims count=%s recovered=%s resubmitted=%s",
                        len(rows), recovered, len(resubmit))
        return recovered, resubmit

    async def _submit(self, messages: Sequence[Message]) -> tuple[int, int]:
        if not messages:
            return 0, 0
        # Raises when nothing could be stored: the claims stay open and are taken over later.
        results = await self.pipeline.submit([sms_submission(m) for m in messages])
        sent = refused = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for message, result in zip(messages, results, strict=True):
                if isinstance(result, Accepted):
                    await conn.execute(_SENT, message.id, result.message_id)
                    sent += 1
                else:
                    await conn.execute(_REFUSED, message.id, result.http_text[:500])
                    refused += 1
                    log.info("event=cascade_refused message=%s reason=%s", message.id,
                             result.reason)
        if sent or refused:
            log.info("event=cascade_sms sent=%s refused=%s", sent, refused)
        return sent, refused
