"""When a Viber→SMS cascade falls back: the rule (pure), and the table of cascades still
pending (``viber_cascade_due``) that status changes move."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.store.messages import IN_FLIGHT, Message, Status

NOT_SENT = "fell back to SMS before it was sent"
"""The error text of a cascade message whose SMS went before the Viber message was sent."""

# The earliest reason wins.
_MARK_DUE = """
INSERT INTO viber_cascade_due (viber_message_id, due_at)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
ON CONFLICT (viber_message_id) DO UPDATE
    SET due_at = least(viber_cascade_due.due_at, EXCLUDED.due_at)
"""

_FORGET = "DELETE FROM viber_cascade_due WHERE viber_message_id = ANY($1::uuid[])"


def fallback_due(message: Message) -> datetime | None:
    """When a cascade message falls back if not delivered: ``fallback_ttl`` seconds after
    Herald accepted it, or after its schedule when that is later. None: not a cascade.
    Migration 0410's trigger computes the same when the message is stored."""
    if (message.channel != "viber" or message.fallback_channel != "sms"
            or message.fallback_ttl is None):
        return None
    start = message.created_at
    if message.scheduled_for is not None and message.scheduled_for > start:
        start = message.scheduled_for
    return start + timedelta(seconds=message.fallback_ttl)


def fallback_reason(message: Message, now: datetime) -> str | None:
    """Why ``message`` falls back to SMS now (``'undelivered'``, ``'failed'``, ``'ttl'``), or None."""
    if message.channel != "viber" or message.fallback_channel != "sms":
        return None
    if message.status == Status.UNDELIVERED:
        return "undelivered"
    if message.status == Status.FAILED:
        return "failed"
    if message.status in IN_FLIGHT:
        due = fallback_due(message)
        if due is not None and due <= now:
            return "ttl"
    return None


def due_rows(messages: Sequence[Message], now: datetime) -> tuple[list[tuple[uuid.UUID, datetime]],
                                                                  list[uuid.UUID]]:
    """What moved cascade messages mean for ``viber_cascade_due``: (rows to mark due
    (id, due_at), ids no longer pending). Pure; other messages are left out.

    Sending changes nothing: the row written when the message was stored already says
    when its TTL runs out (:func:`fallback_due`)."""
    due: list[tuple[uuid.UUID, datetime]] = []
    settled: list[uuid.UUID] = []
    for m in messages:
        if m.fallback_channel != "sms" or m.channel != "viber":
            continue
        if m.status in (Status.UNDELIVERED, Status.FAILED):
            due.append((m.id, now))
        elif m.status in (Status.DELIVERED, Status.SEEN):
            settled.append(m.id)
    return due, settled


async def mark_due(conn: asyncpg.Connection, messages: Sequence[Message]) -> None:
    """Note what moved messages mean for their cascades (:func:`due_rows`): due now when
    they ended undelivered or failed, no longer pending when delivered or seen."""
    due, settled = due_rows(messages, datetime.now(UTC))
    if due:
        await conn.execute(_MARK_DUE, [i for i, _ in due], [at for _, at in due])
    if settled:
        await forget_due(conn, settled)


async def forget_due(conn: asyncpg.Connection, message_ids: Sequence[uuid.UUID]) -> None:
    """Drop the pending rows of these cascades (settled, or their SMS claimed)."""
    await conn.execute(_FORGET, list(message_ids))
