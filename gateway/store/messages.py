"""Messages (EDRs): the row per accepted message, its status machine, and their SQL.

All functions take a connection and open no transaction: the caller's moves the
message together with what the move causes. The status rules and the storage
choices: ``gateway/store/README.md``."""

from __future__ import annotations

import enum
import functools
import operator
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from gateway.store import pgcopy
from smpp.receipts import message_id_keys, normalise_message_id

try:  # asyncpg's own uuid.UUID subclass: built and printed in C (what it returns for uuid columns)
    from asyncpg.pgproto.pgproto import UUID as _UUID
except ImportError:  # pragma: no cover - a later asyncpg that moved it: the standard class
    def _UUID(raw: bytes) -> uuid.UUID:  # stands in for the class
        return uuid.UUID(bytes=raw)


class Status(enum.StrEnum):
    PREPARED = "PREPARED"
    BILLED = "BILLED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    UNDELIVERED = "UNDELIVERED"
    FAILED = "FAILED"
    SEEN = "SEEN"


class Event(enum.StrEnum):
    """What happened to a message."""

    BILLED = "billed"            # charged
    SENT = "sent"                # a vendor accepted it (submit_sm_resp OK / provider 200)
    DELIVERED = "delivered"      # receipt: DELIVRD
    UNDELIVERED = "undelivered"  # receipt: UNDELIV, REJECTD, DELETED, UNKNOWN
    EXPIRED = "expired"          # receipt EXPIRED or our own validity sweep → UNDELIVERED
    FAILED = "failed"            # we could not send it (rejected, no route, vendor error)
    SEEN = "seen"                # Viber: the recipient opened it


FINAL = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.SEEN})
IN_FLIGHT = frozenset({Status.PREPARED, Status.BILLED, Status.SENT})

S, E = Status, Event
# status -> {event: next status}. Absent pairs are ignored events (None).
TRANSITIONS: dict[Status, dict[Event, Status]] = {
    S.PREPARED: {
        E.BILLED: S.BILLED, E.SENT: S.SENT, E.FAILED: S.FAILED,
    },
    S.BILLED: {
        E.SENT: S.SENT, E.DELIVERED: S.DELIVERED, E.UNDELIVERED: S.UNDELIVERED,
        E.EXPIRED: S.UNDELIVERED, E.FAILED: S.FAILED, E.SEEN: S.SEEN,
    },
    S.SENT: {
        E.DELIVERED: S.DELIVERED, E.UNDELIVERED: S.UNDELIVERED, E.EXPIRED: S.UNDELIVERED,
        E.FAILED: S.FAILED, E.SEEN: S.SEEN,
    },
    S.DELIVERED: {E.SEEN: S.SEEN},
    S.UNDELIVERED: {},
    S.FAILED: {},
    S.SEEN: {},
}
del S, E


def next_status(current: Status | str, event: Event | str) -> Status | None:
    """The status ``event`` moves a message in ``current`` to, or None to ignore it."""
    return TRANSITIONS[Status(current)].get(Event(event))


def allowed_from(event: Event | str) -> list[str]:
    """The statuses in which ``event`` does something (the SQL guard)."""
    ev = Event(event)
    return [str(s) for s, moves in TRANSITIONS.items() if ev in moves]


def _target(event: Event) -> Status:
    # Every event leads to one status wherever it is accepted; checked at import.
    targets = {moves[event] for moves in TRANSITIONS.values() if event in moves}
    (only,) = targets
    return only


EVENT_TARGET: dict[Event, Status] = {ev: _target(ev) for ev in Event}


def new_message_id(now_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562 §5.7): 48-bit Unix milliseconds, then random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big") & _KEEP_ONE | _SET_ONE
    return _UUID((((ms & 0xFFFF_FFFF_FFFF) << 80) | rand).to_bytes(16, "big"))


def uuid7_floor(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of ``at``'s millisecond (every bit after the time zero).

    As SQL ``herald_uuid7_floor`` (migration 0700): the id range of a time range, so
    that a query on a time can name the months of ``messages`` it reads.
    """
    ms = max(int(at.timestamp() * 1000), 0)
    return uuid.UUID(int=(ms & 0xFFFF_FFFF_FFFF) << 80)


def uuid7_time(value: uuid.UUID) -> datetime:
    """The millisecond a UUIDv7 was drawn (its first 48 bits), UTC."""
    return datetime.fromtimestamp((value.int >> 80) / 1000, UTC)


def new_message_ids(count: int, now_ms: int | None = None) -> list[uuid.UUID]:
    """``count`` UUIDv7s of the same millisecond (what a batch of messages takes at once).

    Built as the 16 bytes (48-bit Unix milliseconds, version 7, 12 random bits,
    variant 0b10, 62 random bits) with one read of the random source for the
    batch, as asyncpg's ``UUID``: a ``uuid.UUID`` subclass, equal to and hashing
    like the standard one (asyncpg returns it for every uuid it reads), built and
    printed in C, about ten times cheaper than ``uuid.UUID(int=…)``.
    """
    if count <= 0:
        return []
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    stamp = (ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")
    size = 10 * count
    # The version and variant bits of every id at once: the batch's random bytes as one integer.
    value = int.from_bytes(os.urandom(size), "big") & int.from_bytes(_KEEP * count, "big")
    raw = (value | int.from_bytes(_SET * count, "big")).to_bytes(size, "big")
    return [_UUID(stamp + raw[i:i + 10]) for i in range(0, size, 10)]


# The ten bytes after the timestamp: version 7 in the high nibble of the first,
# the variant 0b10 in the top bits of the third; the other 74 bits random.
_KEEP = bytes((0x0F, 0xFF, 0x3F)) + b"\xff" * 7
_SET = bytes((0x70, 0x00, 0x80)) + b"\x00" * 7
_KEEP_ONE = int.from_bytes(_KEEP, "big")
_SET_ONE = int.from_bytes(_SET, "big")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class NewMessage:
    """A message to store. ``route`` is not a column: the vendor ids, in failover
    order, that the writer puts in the send queue (empty: not queued).

    Not frozen, as :class:`Message` is not: a frozen dataclass's ``__init__`` stores
    each of 40 fields through ``object.__setattr__``, several times the cost of
    plain slots, and the message path builds a few of these per message. Treat it
    as a value; only the write path fills in the charge (``status``, ``cost``,
    ``currency``, ``charge_ref``, ``billed_at``) while it stores it.
    """

    partner_id: int
    origin: str
    sender: str
    destination: str
    text: str = ""
    channel: str = "sms"
    id: uuid.UUID = field(default_factory=new_message_id)
    user_id: int | None = None
    api_key_id: int | None = None
    smpp_account_id: int | None = None
    smpp_session: str | None = None
    mccmnc: str | None = None
    parts: int = 1
    encoding: str = "gsm7"
    data_coding: int = 0
    flash: bool = False
    accept_mo: bool = False
    cost: Decimal = Decimal(0)
    currency: str | None = None
    charge_ref: str | None = None
    label: str = ""
    campaign_id: int | None = None
    client_ref: str | None = None          # the producer's own reference: Herald never reads it
    status: Status = Status.PREPARED
    vendor_id: int | None = None
    error_code: str | None = None
    error_text: str | None = None
    registered_delivery: int = 0
    callback_url: str | None = None
    valid_until: datetime | None = None
    created_at: datetime = field(default_factory=_now)
    billed_at: datetime | None = None
    # Viber content and the Viber→SMS cascade (migration 0305)
    traffic_type: str | None = None
    fallback_channel: str | None = None
    fallback_ttl: int | None = None
    image_url: str | None = None
    button_url: str | None = None
    button_caption: str | None = None
    # SMPP schedule_delivery_time and replace_sm (migration 0370)
    scheduled_for: datetime | None = None  # queued with not_before = this (None: now)
    smpp_data_coding: int | None = None    # the client's submit_sm data_coding
    # What the SMPP client wrote (migration 0440): its service_type; a part it split
    # itself (the concatenation reference, parts, part number, 16-bit reference); for
    # binary octets passed through, whether they start with a UDH.
    service_type: str | None = None
    concat_ref: int | None = None
    concat_total: int | None = None
    concat_seq: int | None = None
    concat_wide: bool | None = None
    udhi: bool | None = None
    # The SMS of a Viber→SMS cascade: the Viber message it stands in for.
    fallback_for: uuid.UUID | None = None
    route: tuple[int, ...] = ()


# Columns COPY writes, in NewMessage field order (``route`` excluded).
INSERT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NewMessage) if f.name != "route")


# The messages table's column types (migrations 0300, 0305, 0370, 0440); a test checks them
# against the database. The one-statement insert (unnest_insert) casts its arrays to them,
# so a NewMessage field missing here fails at import.
COPY_COLUMN_TYPES: dict[str, str] = {
    "partner_id": "bigint", "origin": "text", "sender": "text", "destination": "text",
    "text": "text", "channel": "text", "id": "uuid", "user_id": "bigint", "api_key_id": "bigint",
    "smpp_account_id": "bigint", "smpp_session": "text", "mccmnc": "text", "parts": "smallint",
    "encoding": "text", "data_coding": "smallint", "flash": "boolean", "accept_mo": "boolean",
    "cost": "numeric", "currency": "character", "charge_ref": "text", "label": "text",
    "campaign_id": "bigint", "client_ref": "text", "status": "text", "vendor_id": "bigint",
    "error_code": "text", "error_text": "text", "registered_delivery": "smallint",
    "callback_url": "text", "valid_until": "timestamp with time zone",
    "created_at": "timestamp with time zone", "billed_at": "timestamp with time zone",
    "traffic_type": "text", "fallback_channel": "text", "fallback_ttl": "integer",
    "image_url": "text", "button_url": "text", "button_caption": "text",
    "scheduled_for": "timestamp with time zone", "smpp_data_coding": "smallint",
    "service_type": "text", "concat_ref": "integer", "concat_total": "smallint",
    "concat_seq": "smallint", "concat_wide": "boolean", "udhi": "boolean", "fallback_for": "uuid",
}
# The columns that differ from one message of a batch to the next; the others are encoded
# once while they repeat (gateway.store.pgcopy).
COPY_TABLE = pgcopy.CopyTable(
    [(c, COPY_COLUMN_TYPES[c]) for c in INSERT_COLUMNS],
    repeated=[c for c in INSERT_COLUMNS if c not in ("id", "destination", "charge_ref", "mccmnc")],
)


_COLUMN_VALUES = operator.attrgetter(*INSERT_COLUMNS)
_BILLED_AT = INSERT_COLUMNS.index("billed_at")


def _record(msg: NewMessage) -> tuple:
    # attrgetter builds the row in C: this runs once per stored message.
    # Status is a str subclass, which the text encoder takes as it is.
    values = _COLUMN_VALUES(msg)
    if msg.billed_at is None and msg.status == Status.BILLED:
        values = (*values[:_BILLED_AT], msg.created_at, *values[_BILLED_AT + 1:])
    return values


async def insert_messages(conn: asyncpg.Connection, msgs: Sequence[NewMessage]) -> None:
    """Write ``msgs`` with one binary COPY (call inside the caller's transaction)."""
    await pgcopy.copy(conn, "messages", COPY_TABLE, [_record(m) for m in msgs])


# -- new messages as arrays: one statement, for small batches ---------------------------
#
# A COPY costs two round trips (the statement, then the data); an INSERT of unnested
# arrays costs one and can share its statement with other rows (the send queue's,
# gateway.store.queue.insert_and_enqueue). asyncpg encodes each value, which for a few hundred
# rows costs less than the round trip saved; large batches keep the binary COPY.


def unnest_insert(first_param: int) -> str:
    """``INSERT INTO messages … SELECT FROM unnest(…)`` taking :func:`unnest_args` from
    parameter ``$first_param`` on."""
    arrays = ", ".join(
        # char(3) as text: a cast to character[] would cut the value to one character
        f"${first_param + i}::{'text' if COPY_COLUMN_TYPES[c] == 'character' else COPY_COLUMN_TYPES[c]}[]"
        for i, c in enumerate(INSERT_COLUMNS)
    )
    return f"INSERT INTO messages ({', '.join(INSERT_COLUMNS)}) SELECT * FROM unnest({arrays})"


def unnest_args(msgs: Sequence[NewMessage]) -> list[list]:
    """The column arrays of :func:`unnest_insert`, one list per column of :data:`INSERT_COLUMNS`."""
    return [list(column) for column in zip(*map(_record, msgs), strict=True)]


@dataclass(slots=True)
class Message:
    """A stored message, as read back (not frozen, for the cost: see :class:`NewMessage`)."""

    id: uuid.UUID
    partner_id: int
    user_id: int | None
    api_key_id: int | None
    smpp_account_id: int | None
    smpp_session: str | None
    origin: str
    channel: str
    sender: str
    destination: str
    mccmnc: str | None
    text: str
    parts: int
    encoding: str
    data_coding: int
    flash: bool
    accept_mo: bool
    cost: Decimal
    currency: str | None
    charge_ref: str | None
    label: str
    campaign_id: int | None
    client_ref: str | None
    status: Status
    vendor_id: int | None
    vendor_message_id: str | None
    vendor_message_key: str | None
    vendor_match_keys: list[str] | None
    error_code: str | None
    error_text: str | None
    registered_delivery: int
    callback_url: str | None
    valid_until: datetime | None
    created_at: datetime
    billed_at: datetime | None
    sent_at: datetime | None
    done_at: datetime | None
    seen_at: datetime | None
    updated_at: datetime
    traffic_type: str | None = None
    fallback_channel: str | None = None
    fallback_ttl: int | None = None
    image_url: str | None = None
    button_url: str | None = None
    button_caption: str | None = None
    scheduled_for: datetime | None = None
    smpp_data_coding: int | None = None
    service_type: str | None = None
    concat_ref: int | None = None
    concat_total: int | None = None
    concat_seq: int | None = None
    concat_wide: bool | None = None
    udhi: bool | None = None
    fallback_for: uuid.UUID | None = None

    @staticmethod
    def from_row(record: asyncpg.Record) -> Message:
        """A Message from a row that starts with :data:`MESSAGE_COLUMNS`, in that order.

        Every read selects those columns explicitly (never ``*``), so the values
        are taken by position: no lookup by name on the hot paths.
        """
        message = Message(*record[:_MESSAGE_WIDTH])
        message.status = _STATUSES[message.status]
        return message

    @property
    def wants_receipt(self) -> bool:
        """SMPP 3.4 §5.2.17: bits 0-1 of registered_delivery ask for a final receipt."""
        return self.registered_delivery & 0b11 != 0


_MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Message))
_MESSAGE_WIDTH = len(_MESSAGE_FIELDS)
_STATUSES: dict[str, Status] = {str(status): status for status in Status}


def message_columns(alias: str = "") -> str:
    """Every column :meth:`Message.from_row` reads, in field order (``alias.`` before each)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + name for name in _MESSAGE_FIELDS)


MESSAGE_COLUMNS = message_columns()


async def get_message(conn: asyncpg.Connection, message_id: uuid.UUID) -> Message | None:
    record = await conn.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id)
    return Message.from_row(record) if record else None


async def apply_event(
    conn: asyncpg.Connection, message_id: uuid.UUID, event: Event | str, *,
    at: datetime | None = None, error_code: str | None = None, error_text: str | None = None,
) -> Message | None:
    """Apply ``event``; the updated message if its status moved, None if ignored.

    The first time a status is reached stamps its time (``billed_at``,
    ``sent_at``, ``done_at``, ``seen_at``); later events never overwrite it.
    """
    (result,) = await apply_events(
        conn, [EventUpdate(message_id, Event(event), at, error_code, error_text)]
    )
    return result


def match_keys(vendor_id: int, message_id: str, keys: Iterable[str] | None = None) -> list[str]:
    """The index keys of a vendor's message id: ``message_id_keys`` (or the ``keys``
    given, e.g. one ``message_id_key`` for a vendor of known format) under the vendor id."""
    chosen = message_id_keys(message_id) if keys is None else keys
    return sorted(f"{vendor_id}{key}" for key in chosen)


async def mark_sent(
    conn: asyncpg.Connection, message_id: uuid.UUID, *, vendor_id: int,
    vendor_message_id: str, keys: Iterable[str] | None = None, at: datetime | None = None,
) -> Message | None:
    """A vendor accepted the message: record its id; the message if it moved to SENT.

    The id is recorded whatever the status (a receipt may be processed first and
    must still find the message later). ``keys`` overrides the match keys when the
    vendor's id format is known (``smpp.receipts.message_id_key``).
    """
    (result,) = await mark_sent_many(
        conn, [SentUpdate(message_id, vendor_id, vendor_message_id,
                          None if keys is None else tuple(keys))], at,
    )
    return result


async def apply_receipt(
    conn: asyncpg.Connection, vendor_id: int, receipt_message_id: str, event: Event | str, *,
    keys: Iterable[str] | None = None, at: datetime | None = None,
    error_code: str | None = None, error_text: str | None = None,
) -> Message | None:
    """A delivery receipt from ``vendor_id`` quoting ``receipt_message_id``.

    Returns the message if its status moved. None means no message matches or
    the receipt is late or repeated; tell them apart with :func:`find_by_vendor_id`.
    """
    (result,) = await apply_receipts(conn, [ReceiptUpdate(
        vendor_id, receipt_message_id, Event(event), at, error_code, error_text,
        None if keys is None else tuple(keys),
    )])
    return result


_FIND_BY_VENDOR_ID = f"""SELECT {MESSAGE_COLUMNS} FROM messages WHERE vendor_match_keys && $1::text[]
    AND id >= '{{since}}'
    ORDER BY vendor_message_key IS NOT DISTINCT FROM $2 DESC, created_at DESC LIMIT 1"""


async def find_by_vendor_id(
    conn: asyncpg.Connection, vendor_id: int, receipt_message_id: str,
    keys: Iterable[str] | None = None,
) -> Message | None:
    """The message a receipt quoting ``receipt_message_id`` would match (same rule)."""
    record = await conn.fetchrow(
        _bounded(_FIND_BY_VENDOR_ID, receipts_since()),
        match_keys(vendor_id, receipt_message_id, keys), normalise_message_id(receipt_message_id),
    )
    return Message.from_row(record) if record else None


# --- batches: one statement for many messages (the SendWorker, receipt writer) ---------


@dataclass(frozen=True, slots=True)
class SentUpdate:
    """A vendor accepted ``message_id`` under ``vendor_message_id``."""

    message_id: uuid.UUID
    vendor_id: int
    vendor_message_id: str
    keys: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class EventUpdate:
    message_id: uuid.UUID
    event: Event
    at: datetime | None = None
    error_code: str | None = None
    error_text: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptUpdate:
    """A delivery receipt: ``vendor_id`` reports ``event`` for ``receipt_message_id``."""

    vendor_id: int
    receipt_message_id: str
    event: Event
    at: datetime | None = None
    error_code: str | None = None
    error_text: str | None = None
    keys: tuple[str, ...] | None = None


def _flat_keys(pairs: Sequence[tuple[int, str, Iterable[str] | None]]) -> tuple[list[int], list[str]]:
    """Match keys of many ids as two flat arrays (owner ordinal, key) for unnest."""
    owners: list[int] = []
    keys: list[str] = []
    for ordinal, (vendor_id, message_id, given) in enumerate(pairs, start=1):
        for key in match_keys(vendor_id, message_id, given):
            owners.append(ordinal)
            keys.append(key)
    return owners, keys


def _id_range(updates: Sequence[SentUpdate] | Sequence[EventUpdate]) -> tuple[uuid.UUID, uuid.UUID]:
    """The smallest and largest message id of a batch.

    ``messages`` is partitioned by month on the id (migration 0700). A batch
    statement joins its ids to the table, so PostgreSQL cannot tell which months
    it reads before it runs, and its cached plan opens every month's indexes at
    each execution: measured on 18 months, 30 µs more per message sent. Bounded
    by these two parameters, it opens only the months between them.
    """
    ids = [u.message_id for u in updates]
    return min(ids), max(ids)


_MARK_SENT_MANY = """
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[])
        WITH ORDINALITY AS u(id, vendor_id, vmid, normal, ord)
), k AS (
    SELECT ord, array_agg(key ORDER BY key) AS keys
    FROM unnest($5::bigint[], $6::text[]) AS k(ord, key) GROUP BY ord
), old AS (
    SELECT m.id, m.status AS previous FROM messages m JOIN u ON u.id = m.id
    WHERE m.id BETWEEN $9 AND $10
    ORDER BY m.id FOR UPDATE OF m
)
UPDATE messages m SET
    vendor_id = u.vendor_id, vendor_message_id = u.vmid, vendor_message_key = u.normal,
    vendor_match_keys = k.keys,
    status = CASE WHEN m.status = ANY($7::text[]) THEN 'SENT' ELSE m.status END,
    sent_at = CASE WHEN m.status = ANY($7::text[]) THEN coalesce(m.sent_at, $8) ELSE m.sent_at END,
    updated_at = now()
FROM u JOIN old ON old.id = u.id LEFT JOIN k ON k.ord = u.ord
WHERE m.id = u.id AND m.id BETWEEN $9 AND $10
RETURNING {columns}, old.previous
""".replace("{columns}", message_columns("m"))


async def mark_sent_many(
    conn: asyncpg.Connection, updates: Sequence[SentUpdate], at: datetime | None = None
) -> list[Message | None]:
    """:func:`mark_sent` for many messages in one statement; results in input order."""
    if not updates:
        return []
    if len({u.message_id for u in updates}) != len(updates):
        raise ValueError("a message appears twice in one mark_sent_many call")
    owners, keys = _flat_keys([(u.vendor_id, u.vendor_message_id, u.keys) for u in updates])
    records = await conn.fetch(
        _MARK_SENT_MANY,
        [u.message_id for u in updates], [u.vendor_id for u in updates],
        # PostgreSQL text cannot hold NUL; a C-octet string may arrive with its terminator.
        [u.vendor_message_id.replace("\x00", "") for u in updates],
        [normalise_message_id(u.vendor_message_id) for u in updates],
        owners, keys, allowed_from(Event.SENT), at or _now(), *_id_range(updates),
    )
    allowed = allowed_from(Event.SENT)
    moved = {r["id"]: Message.from_row(r) for r in records if r["previous"] in allowed}
    return [moved.get(u.message_id) for u in updates]


_APPLY_EVENTS = """
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                         $6::text[]) AS u(id, target, allowed, at, error_code, error_text)
)
UPDATE messages m SET
    status = u.target,
    billed_at = CASE WHEN u.target = 'BILLED' THEN coalesce(m.billed_at, u.at) ELSE m.billed_at END,
    sent_at = CASE WHEN u.target = 'SENT' THEN coalesce(m.sent_at, u.at) ELSE m.sent_at END,
    done_at = CASE WHEN u.target IN ('DELIVERED', 'UNDELIVERED', 'FAILED', 'SEEN')
                   THEN coalesce(m.done_at, u.at) ELSE m.done_at END,
    seen_at = CASE WHEN u.target = 'SEEN' THEN coalesce(m.seen_at, u.at) ELSE m.seen_at END,
    error_code = coalesce(u.error_code, m.error_code),
    error_text = coalesce(u.error_text, m.error_text),
    updated_at = now()
FROM u
WHERE m.id = u.id AND m.status = ANY(string_to_array(u.allowed, ','))
  AND m.id BETWEEN $7 AND $8
RETURNING {columns}
""".replace("{columns}", message_columns("m"))


async def apply_events(
    conn: asyncpg.Connection, updates: Sequence[EventUpdate]
) -> list[Message | None]:
    """:func:`apply_event` for many messages; the moved message per update, in order.

    Several updates for one message are applied in input order (one statement
    per round), so a batch behaves as the same calls made one by one.
    """
    results: list[Message | None] = [None] * len(updates)
    rounds: list[list[int]] = []
    seen: dict[uuid.UUID, int] = {}
    for index, update in enumerate(updates):
        depth = seen.get(update.message_id, 0)
        seen[update.message_id] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append(index)
    now = _now()
    for indexes in rounds:
        batch = [updates[i] for i in indexes]
        events = [Event(u.event) for u in batch]
        records = await conn.fetch(
            _APPLY_EVENTS, [u.message_id for u in batch],
            [str(EVENT_TARGET[e]) for e in events], [",".join(allowed_from(e)) for e in events],
            [u.at or now for u in batch], [u.error_code for u in batch],
            [u.error_text for u in batch], *_id_range(batch),
        )
        moved = {r["id"]: Message.from_row(r) for r in records}
        for i in indexes:
            results[i] = moved.get(updates[i].message_id)
    return results


# A receipt is matched among the messages of the months that began less than
# RECEIPT_WINDOW ago only: older ones cannot hold a message a carrier still reports on (a
# submit is scheduled at most 30 days ahead and valid 7 days after), and not probing their
# indexes keeps a receipt's cost the same whatever the retention (``messages`` is
# partitioned by month, 0700; on 16 months, probing them all cost 70 µs more a receipt).
# The bound is the first id of a month, written into the statement's text (one text a
# month): PostgreSQL then leaves the older months out of the plan itself, and knows that
# the bound holds for every row of the months it reads, so it never reads the primary key
# for it (with the bound as a parameter, a cached plan may AND a scan of a month's ids
# into each lookup).
RECEIPT_WINDOW = timedelta(days=62)


def receipts_since(now: datetime | None = None) -> uuid.UUID:
    """The first id of the month that began RECEIPT_WINDOW before ``now`` (the receipts' bound)."""
    back = (now or _now()) - RECEIPT_WINDOW
    return uuid7_floor(datetime(back.year, back.month, 1, tzinfo=UTC))


@functools.lru_cache(maxsize=4)
def _bounded(sql: str, since: uuid.UUID) -> str:
    return sql.replace("{since}", str(since))


_MATCH_RECEIPTS = """
WITH k AS (
    SELECT ord, array_agg(key) AS keys
    FROM unnest($2::bigint[], $3::text[]) AS k(ord, key) GROUP BY ord
)
SELECT r.ord, t.id
FROM unnest($1::text[]) WITH ORDINALITY AS r(normal, ord)
JOIN k ON k.ord = r.ord
CROSS JOIN LATERAL (
    SELECT id FROM messages WHERE vendor_match_keys && k.keys
      AND id >= '{since}'
    ORDER BY vendor_message_key IS NOT DISTINCT FROM r.normal DESC, created_at DESC
    LIMIT 1
) t
"""


async def apply_receipts(
    conn: asyncpg.Connection, receipts: Sequence[ReceiptUpdate]
) -> list[Message | None]:
    """:func:`apply_receipt` for many receipts (two statements); results in input order."""
    if not receipts:
        return []
    owners, keys = _flat_keys([(r.vendor_id, r.receipt_message_id, r.keys) for r in receipts])
    matched = {
        row["ord"]: row["id"]
        for row in await conn.fetch(
            _bounded(_MATCH_RECEIPTS, receipts_since()),
            [normalise_message_id(r.receipt_message_id) for r in receipts],
            owners, keys,
        )
    }
    wanted = [(i, r) for i, r in enumerate(receipts) if (i + 1) in matched]
    moved = await apply_events(conn, [
        EventUpdate(matched[i + 1], Event(r.event), r.at, r.error_code, r.error_text)
        for i, r in wanted
    ])
    results: list[Message | None] = [None] * len(receipts)
    for (i, _), message in zip(wanted, moved, strict=True):
        results[i] = message
    return results


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the previous page ended: the last row's (created_at, id)."""

    created_at: datetime
    id: uuid.UUID


def page_cursor(message: Message) -> PageCursor:
    return PageCursor(message.created_at, message.id)


async def list_for_partner(
    conn: asyncpg.Connection, partner_id: int, *, limit: int = 150,
    before: PageCursor | None = None, status: Status | str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> list[Message]:
    """One page of a partner's messages, newest first (keyset: no OFFSET scans).

    Served by ``messages_partner_created``; filters narrow the page, they do not
    change its order.
    """
    records = await conn.fetch(
        f"""SELECT {MESSAGE_COLUMNS} FROM messages
           WHERE partner_id = $1
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
             AND ($4::text IS NULL OR status = $4)
             AND ($5::timestamptz IS NULL OR created_at >= $5)
             AND ($6::timestamptz IS NULL OR created_at < $6)
           ORDER BY created_at DESC, id DESC
           LIMIT $7""",
        partner_id,
        before.created_at if before else None, before.id if before else None,
        str(Status(status)) if status else None, since, until, limit,
    )
    return [Message.from_row(r) for r in records]
