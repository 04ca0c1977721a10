"""Sender IDs: requested by a partner, approved up the partner chain, usable once the owner agrees.

The request travels upwards (Campaign Portal guide §7.4): its requester's
parent decides first; a reseller that approves passes it on to its own
parent; the system owner's approval confirms it and enables it. Any partner
on the way may decline, which ends the request. ``pending_partner_id`` names
whose decision is awaited, so each step is one guarded UPDATE (two admins
clicking at once cannot both act) followed by an event row.

Statuses shown to users: enabled / disabled / waiting (for approval).
Request states: new, in_progress, confirmed, declined, canceled (by the
user), unsubscribed, period_changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

import asyncpg

from accounts.tenancy import VISIBLE, Conn, Scope, require_owner, visible_partner
from config.errors import Conflict, Forbidden, Invalid, NotFound

Channel = Literal["sms", "viber"]
CHANNELS = ("sms", "viber")
LIVE_STATES = ("new", "in_progress", "confirmed", "period_changed")
OPEN_STATES = ("new", "in_progress")
ACTIVE_STATES = ("confirmed", "period_changed")

# 3GPP TS 23.040 §9.1.2.5: an alphanumeric originating address holds at most
# 11 GSM 7-bit characters; a numeric one is an E.164 number of at most 15 digits.
_SMS_ALPHA = re.compile(r"^[A-Za-z0-9 .\-_&'!?+]{1,11}$")
_SMS_NUMERIC = re.compile(r"^\+?[0-9]{1,15}$")
_VIBER = re.compile(r"^[^\x00-\x1f]{1,32}$")


def validate_sender(channel: str, sender: str) -> str:
    """The sender ID trimmed, or Invalid naming the rule it breaks."""
    if channel not in CHANNELS:
        raise Invalid("channel must be sms or viber", field="channel")
    sender = sender.strip()
    if channel == "sms":
        if not (_SMS_NUMERIC.match(sender) or (_SMS_ALPHA.match(sender) and not sender.isdigit())):
            raise Invalid("an SMS sender ID is up to 11 letters/digits or a number of up to 15 digits",
                          field="sender")
    elif not _VIBER.match(sender):
        raise Invalid("a Viber sender name has 1 to 32 printable characters", field="sender")
    return sender


@dataclass(frozen=True, slots=True)
class SenderId:
    id: int
    partner_id: int
    channel: Channel
    sender: str
    status: str            # enabled / disabled / waiting
    state: str             # request state
    pending_partner_id: int | None
    comment: str
    custom_fields: dict[str, Any]
    requested_by: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    updated_at: datetime

    def days_left(self, now: datetime) -> int | None:
        """Whole days until expiry (0 when expired), None when it never expires."""
        if self.valid_until is None:
            return None
        return max(0, (self.valid_until - now).days)


@dataclass(frozen=True, slots=True)
class Document:
    """A supporting document: its bytes live in the portal's file store under ``storage_key``."""

    file_name: str
    storage_key: str
    content_type: str = "application/octet-stream"
    size_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SenderEvent:
    id: int
    sender_id_id: int
    at: datetime
    action: str
    actor_partner_id: int | None
    actor_user_id: int | None
    state: str
    comment: str


_COLUMNS = ", ".join(f"s.{f.name}" for f in fields(SenderId))


def _sid(row: asyncpg.Record) -> SenderId:
    return SenderId(**dict(row))


async def _event(conn: Conn, scope: Scope | None, sid: int, action: str, state: str, comment: str = "") -> None:
    await conn.execute(
        """INSERT INTO sender_id_events (sender_id_id, action, actor_partner_id, actor_user_id, state, comment)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        sid, action, scope.partner_id if scope else None, scope.user_id if scope else None, state, comment,
    )


async def request_sender_id(
    conn: asyncpg.Connection, scope: Scope, *, channel: str, sender: str, comment: str = "",
    documents: Sequence[Document] = (), custom_fields: dict[str, Any] | None = None,
    partner_id: int | None = None,
) -> SenderId:
    """Ask for a sender ID for ``partner_id`` (default: the acting partner); its parent decides first."""
    partner = await visible_partner(conn, scope, partner_id or scope.partner_id)
    if partner.parent_id is None:
        raise Invalid("the system owner does not request sender IDs; it registers them directly")
    sender = validate_sender(channel, sender)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO sender_ids AS s (partner_id, channel, sender, pending_partner_id, comment,
                                               custom_fields, requested_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",
                partner.id, channel, sender, partner.parent_id, comment, custom_fields or {}, scope.user_id,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("this sender ID is already requested or active for this channel",
                           field="sender") from exc
        for doc in documents:
            await conn.execute(
                """INSERT INTO sender_id_documents (sender_id_id, file_name, content_type, size_bytes, storage_key)
                   VALUES ($1, $2, $3, $4, $5)""",
                row["id"], doc.file_name, doc.content_type, doc.size_bytes, doc.storage_key,
            )
        await _event(conn, scope, row["id"], "requested", "new", comment)
    return _sid(row)


async def get_sender_id(conn: Conn, scope: Scope, sid: int) -> SenderId:
    """A sender ID of a partner in the scope's subtree, or one awaiting the scope's decision."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM sender_ids s JOIN partners p ON p.id = s.partner_id
            WHERE s.id = $2 AND {VISIBLE}""",
        scope.partner_id, sid,
    )
    if row is None:
        raise NotFound("no such sender ID")
    return _sid(row)


async def list_sender_ids(
    conn: Conn, scope: Scope, *, partner_id: int | None = None, channel: str | None = None,
    awaiting_me: bool = False, limit: int = 200, after_id: int = 0,
) -> list[SenderId]:
    """Sender IDs in the scope's subtree; ``awaiting_me`` keeps those waiting for the scope's decision."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM sender_ids s JOIN partners p ON p.id = s.partner_id
            WHERE {VISIBLE} AND s.id > $2
              AND ($3::bigint IS NULL OR s.partner_id = $3)
              AND ($4::text IS NULL OR s.channel = $4)
              AND (NOT $5 OR s.pending_partner_id = $1)
            ORDER BY s.id LIMIT $6""",
        scope.partner_id, after_id, partner_id, channel, awaiting_me, limit,
    )
    return [_sid(r) for r in rows]


async def _transition(conn: asyncpg.Connection, scope: Scope, sid: int, sql: str, *args: Any,
                      why: str) -> SenderId:
    """Run a guarded UPDATE; when it matches nothing, tell NotFound from a wrong state."""
    row = await conn.fetchrow(sql, sid, *args)
    if row is None:
        current = await get_sender_id(conn, scope, sid)  # NotFound for other tenants
        raise Conflict(f"{why} (request is {current.state}, status {current.status})")
    return _sid(row)


async def approve(conn: asyncpg.Connection, scope: Scope, sid: int, *, comment: str = "",
                  valid_until: datetime | None = None) -> SenderId:
    """The pending partner approves: a reseller passes it up, the owner confirms and enables it.

    ``valid_until`` (owner only) sets the expiry; None means no expiry.
    """
    async with conn.transaction():
        if scope.is_owner:
            s = await _transition(
                conn, scope, sid,
                f"""UPDATE sender_ids s SET status = 'enabled', state = 'confirmed', pending_partner_id = NULL,
                        valid_from = now(), valid_until = $3, updated_at = now()
                    WHERE s.id = $1 AND s.pending_partner_id = $2 AND s.state IN ('new', 'in_progress')
                    RETURNING {_COLUMNS}""",
                scope.partner_id, valid_until, why="not waiting for your decision",
            )
            await _event(conn, scope, sid, "approved", "confirmed", comment)
            return s
        if valid_until is not None:
            raise Forbidden("only the system owner sets the validity period")
        s = await _transition(
            conn, scope, sid,
            f"""UPDATE sender_ids s SET state = 'in_progress', updated_at = now(),
                    pending_partner_id = (SELECT parent_id FROM partners WHERE id = $2)
                WHERE s.id = $1 AND s.pending_partner_id = $2 AND s.state IN ('new', 'in_progress')
                RETURNING {_COLUMNS}""",
            scope.partner_id, why="not waiting for your decision",
        )
        await _event(conn, scope, sid, "passed_on", "in_progress", comment)
        return s


async def decline(conn: asyncpg.Connection, scope: Scope, sid: int, *, comment: str = "") -> SenderId:
    """The pending partner declines: the request ends here."""
    async with conn.transaction():
        s = await _transition(
            conn, scope, sid,
            f"""UPDATE sender_ids s SET status = 'disabled', state = 'declined', pending_partner_id = NULL,
                    updated_at = now()
                WHERE s.id = $1 AND s.pending_partner_id = $2 AND s.state IN ('new', 'in_progress')
                RETURNING {_COLUMNS}""",
            scope.partner_id, why="not waiting for your decision",
        )
        await _event(conn, scope, sid, "declined", "declined", comment)
        return s


async def cancel(conn: asyncpg.Connection, scope: Scope, sid: int, *, comment: str = "") -> SenderId:
    """The requesting partner withdraws a request still under way."""
    async with conn.transaction():
        s = await _transition(
            conn, scope, sid,
            f"""UPDATE sender_ids s SET status = 'disabled', state = 'canceled', pending_partner_id = NULL,
                    updated_at = now()
                WHERE s.id = $1 AND s.partner_id = $2 AND s.state IN ('new', 'in_progress')
                RETURNING {_COLUMNS}""",
            scope.partner_id, why="only an open request of your own can be canceled",
        )
        await _event(conn, scope, sid, "canceled", "canceled", comment)
        return s


async def unsubscribe(conn: asyncpg.Connection, scope: Scope, sid: int, *, comment: str = "") -> SenderId:
    """End an active sender ID: by its partner or any partner above it."""
    await get_sender_id(conn, scope, sid)  # the scope must see it (itself or above)
    async with conn.transaction():
        s = await _transition(
            conn, scope, sid,
            f"""UPDATE sender_ids s SET status = 'disabled', state = 'unsubscribed', updated_at = now()
                WHERE s.id = $1 AND s.state IN ('confirmed', 'period_changed')
                RETURNING {_COLUMNS}""",
            why="only an active sender ID can be unsubscribed",
        )
        await _event(conn, scope, sid, "unsubscribed", "unsubscribed", comment)
        return s


async def change_period(conn: asyncpg.Connection, scope: Scope, sid: int, valid_until: datetime | None,
                        *, comment: str = "") -> SenderId:
    """The system owner moves the expiry of an active sender ID (None: never expires)."""
    require_owner(scope)
    async with conn.transaction():
        s = await _transition(
            conn, scope, sid,
            f"""UPDATE sender_ids s SET state = 'period_changed', valid_until = $2, updated_at = now()
                WHERE s.id = $1 AND s.state IN ('confirmed', 'period_changed')
                RETURNING {_COLUMNS}""",
            valid_until, why="only an active sender ID has a period to change",
        )
        await _event(conn, scope, sid, "period_changed", "period_changed", comment)
        return s


async def expire_due(conn: asyncpg.Connection, now: datetime) -> int:
    """Unsubscribe enabled sender IDs whose period ended; returns how many (a periodic job)."""
    async with conn.transaction():
        rows = await conn.fetch(
            """UPDATE sender_ids SET status = 'disabled', state = 'unsubscribed', updated_at = now()
               WHERE status = 'enabled' AND valid_until <= $1 RETURNING id""",
            now,
        )
        await conn.executemany(
            """INSERT INTO sender_id_events (sender_id_id, action, state, comment)
               VALUES ($1, 'expired', 'unsubscribed', 'validity period ended')""",
            [(r["id"],) for r in rows],
        )
    return len(rows)


async def events(conn: Conn, scope: Scope, sid: int) -> list[SenderEvent]:
    """The steps of one request, oldest first."""
    await get_sender_id(conn, scope, sid)
    rows = await conn.fetch(
        """SELECT id, sender_id_id, at, action, actor_partner_id, actor_user_id, state, comment
           FROM sender_id_events WHERE sender_id_id = $1 ORDER BY id""",
        sid,
    )
    return [SenderEvent(**dict(r)) for r in rows]


async def documents(conn: Conn, scope: Scope, sid: int) -> list[Document]:
    await get_sender_id(conn, scope, sid)
    rows = await conn.fetch(
        """SELECT file_name, storage_key, content_type, size_bytes FROM sender_id_documents
           WHERE sender_id_id = $1 ORDER BY id""",
        sid,
    )
    return [Document(**dict(r)) for r in rows]


_USABLE = """SELECT EXISTS (SELECT 1 FROM sender_ids
    WHERE partner_id = $1 AND channel = $2 AND sender = $3 AND status = 'enabled'
      AND (valid_until IS NULL OR valid_until > $4))"""


async def is_usable(conn: Conn, partner_id: int, channel: str, sender: str, now: datetime) -> bool:
    """The pipeline's check: may ``partner_id`` send from ``sender`` on ``channel`` at ``now``?

    One index probe (sender_ids_usable). The match is exact: the sender ID is
    shown to recipients as registered.
    """
    return await conn.fetchval(_USABLE, partner_id, channel, sender, now)


_USABLE_MANY = """SELECT q.partner_id, q.channel, q.sender
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS q(partner_id, channel, sender)
WHERE EXISTS (SELECT 1 FROM sender_ids s
    WHERE s.partner_id = q.partner_id AND s.channel = q.channel AND s.sender = q.sender
      AND s.status = 'enabled' AND (s.valid_until IS NULL OR s.valid_until > $4))"""


async def usable(conn: Conn, keys: Iterable[tuple[int, str, str]], now: datetime) -> set[tuple[int, str, str]]:
    """The (partner_id, channel, sender) of ``keys`` that :func:`is_usable` allows, in one statement."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return set()
    rows = await conn.fetch(_USABLE_MANY, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                            now)
    return {(r["partner_id"], r["channel"], r["sender"]) for r in rows}


async def usable_senders(conn: Conn, partner_id: int, channel: str, now: datetime) -> list[str]:
    """Every sender ID the partner may use on the channel now (campaign wizard, caches)."""
    rows = await conn.fetch(
        """SELECT sender FROM sender_ids WHERE partner_id = $1 AND channel = $2 AND status = 'enabled'
           AND (valid_until IS NULL OR valid_until > $3) ORDER BY sender""",
        partner_id, channel, now,
    )
    return [r["sender"] for r in rows]
