"""Incoming messages (MO) from vendors: reassemble, store, pass on to the client, reply
from a template, opt out. Who owns an MO and the order of it all:
``gateway/report/README.md``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from contacts import contacts as contact_book
from contacts import phones
from gateway.accept import stoplist
from gateway.accept.pipeline import Accepted, Submission
from gateway.report import callbacks
from gateway.report.keywords import Action, ReplyTemplate, match_reply, parse_keywords
from gateway.report.receipts_out import OutboxRow, add_to_outbox
from gateway.store.messages import new_message_id
from smpp.encoding import Encoding, alphabet_of, decode, encode, is_gsm7
from smpp.pdu import DataCoding, DataSm, DeliverSm, EsmClass, Tag
from smpp.udh import IEI_CONCAT_8, IEI_CONCAT_16, UdhError, parse_udh

log = logging.getLogger("herald.mo")

REPLY_LABEL = "Reply to MO"


@dataclass(frozen=True, slots=True)
class MoResult:
    id: uuid.UUID
    partner_id: int | None
    action: str | None
    reply_message_id: uuid.UUID | None
    complete: bool = True


@dataclass(frozen=True, slots=True)
class MoContent:
    """What an MO says: its text, or for a binary MO its octets (``text`` is their hex)."""

    text: str
    data_coding: int | None = None
    octets: bytes | None = None   # binary only: as received, the UDH included when ``udhi``
    udhi: bool = False

    @property
    def binary(self) -> bool:
        return self.octets is not None


def mo_content(payload: bytes, data_coding: int) -> MoContent:
    """The content of an MO's user data (without UDH): decoded text, or binary octets. Pure."""
    if alphabet_of(data_coding) == Encoding.BINARY:
        return MoContent(payload.hex(), data_coding, payload)
    return MoContent(decode(payload, data_coding), data_coding)


def passthrough_of(pdu: DeliverSm | DataSm) -> bytes | None:
    """The user data of an MO whose UDH Herald would lose by reassembling (elements other
    than concatenation, or a UDH that does not parse), UDH included; else None. Pure."""
    data = bytes(pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b"")
    if not (pdu.esm_class & EsmClass.UDHI and data):
        return None
    try:
        elements = parse_udh(data).elements
    except UdhError:
        return data
    return data if any(e.iei not in (IEI_CONCAT_8, IEI_CONCAT_16) for e in elements) else None


@dataclass(frozen=True, slots=True)
class PartSet:
    """One long MO's parts: who sent it where, and the sender's reference and part count."""

    source: str
    destination: str
    ref: int
    total: int


_LOCK_SET = """SELECT pg_advisory_xact_lock(hashtextextended(
    'mo_parts/' || $1::text || '/' || $2::text || '/' || $3::integer || '/' || $4::integer, 0))"""

_SET = "source = $1 AND destination = $2 AND ref = $3 AND total = $4"

_SAME_PART = f"SELECT payload, taken_at FROM mo_parts WHERE {_SET} AND seq = $5"

_DROP_TAKEN = f"DELETE FROM mo_parts WHERE {_SET} AND taken_at IS NOT NULL"

_ADD_PART = """
INSERT INTO mo_parts (source, destination, ref, total, seq, vendor_id, data_coding, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""

_COUNT_PARTS = f"SELECT count(*) FROM mo_parts WHERE {_SET} AND taken_at IS NULL"

_TAKE_PARTS = f"""
UPDATE mo_parts SET taken_at = now() WHERE {_SET} AND taken_at IS NULL
RETURNING seq, vendor_id, data_coding, payload"""

_STALE_SETS = """
SELECT source, destination, ref, total FROM mo_parts WHERE taken_at IS NULL
GROUP BY source, destination, ref, total
HAVING min(received_at) < coalesce($2, now()) - make_interval(secs => $1)"""

_FORGET_TAKEN = """
DELETE FROM mo_parts WHERE taken_at < coalesce($2, now()) - make_interval(secs => $1)"""


def _joined(rows) -> MoContent:
    ordered = sorted(rows, key=lambda r: r["seq"])
    payload = b"".join(bytes(r["payload"]) for r in ordered)
    return mo_content(payload, ordered[0]["data_coding"]) if ordered else MoContent("")


def join_parts(rows, total: int) -> tuple[str, int, bool]:
    """(text, parts received, complete) of a set's rows (``seq``, ``data_coding``, ``payload``);
    the text is decoded with the first part's ``data_coding``, or hex when that is binary."""
    return _joined(rows).text, len(rows), len(rows) == total


async def load_templates(conn: asyncpg.Connection, partner_id: int) -> list[ReplyTemplate]:
    rows = await conn.fetch(
        """SELECT id, keywords, coalesce(reply_text, '') AS reply_text, priority, created_at, channel,
                  action, subscribe_group_id, unsubscribe_group_id
           FROM reply_templates WHERE partner_id = $1 AND enabled""",
        partner_id,
    )
    return [
        ReplyTemplate(r["id"], parse_keywords(r["keywords"]), r["reply_text"], r["priority"],
                      r["created_at"], r["channel"], Action(r["action"]),
                      r["subscribe_group_id"], r["unsubscribe_group_id"])
        for r in rows
    ]


async def add_template(
    conn: asyncpg.Connection, partner_id: int, keywords: str, reply_text: str | None, *,
    priority: int = 5, action: str = "none", channel: str = "sms",
) -> int:
    """Store a reply template (checked like :class:`gateway.report.keywords.ReplyTemplate`)."""
    from datetime import UTC, datetime

    ReplyTemplate(0, parse_keywords(keywords), reply_text or "", priority, datetime.now(UTC),
                  channel, Action(action))
    return await conn.fetchval(
        """INSERT INTO reply_templates (partner_id, keywords, reply_text, priority, action, channel)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        partner_id, keywords, reply_text, priority, action, channel,
    )


def _parts_of(pdu: DeliverSm | DataSm) -> tuple[bytes, int | None, int, int]:
    """(payload, reference, total, sequence) of an MO part; reference None for a whole message."""
    data = bytes(pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b"")
    if pdu.esm_class & EsmClass.UDHI and data:
        try:
            user_data = parse_udh(data)
        except ValueError:
            return data, None, 1, 1
        concat = user_data.concat
        if concat is not None:
            return user_data.payload, concat.reference, concat.total, concat.sequence
        return user_data.payload, None, 1, 1
    ref = pdu.tlvs.get(Tag.SAR_MSG_REF_NUM)
    total = pdu.tlvs.get(Tag.SAR_TOTAL_SEGMENTS)
    seq = pdu.tlvs.get(Tag.SAR_SEGMENT_SEQNUM)
    if ref is not None and total and seq:
        return data, int(ref), int(total), int(seq)
    return data, None, 1, 1


def mo_payload(text: str) -> tuple[int, bytes]:
    """(data_coding, bytes) to pass a text MO on to an SMPP client."""
    if is_gsm7(text):
        return DataCoding.SMSC_DEFAULT, encode(text, "gsm7")
    return DataCoding.UCS2, encode(text, "ucs2")


def outbox_row(account_id: int, source: str, destination: str, content: MoContent) -> OutboxRow:
    """The ``deliver_sm`` passing an MO on to an SMPP client. Pure.

    Text is encoded again (GSM 7-bit, else UCS-2); binary goes as it came: its
    ``data_coding``, its octets, and the UDHI bit when they start with a UDH.
    """
    if content.octets is not None:
        esm_class = EsmClass.UDHI if content.udhi else 0
        return OutboxRow(account_id, "mo", source, destination, esm_class,
                         content.data_coding or 0, content.octets)
    coding, data = mo_payload(content.text)
    return OutboxRow(account_id, "mo", source, destination, 0, coding, data)


async def _move_contact(conn: asyncpg.Connection, partner_id: int, source: str, decision,
                        *, create_missing: bool) -> None:
    """A template's group for the action: the subscriber's contact moves there (a subscribe
    makes the number a contact of that group when it is none yet). See :mod:`contacts`."""
    if decision is None or decision.group_id is None:
        return
    phone = phones.normalise(source)
    if phone is not None:
        await contact_book.move_by_reply(conn, partner_id, phone, decision.group_id,
                                     create_missing=create_missing)


class MoHandler:
    """Receives MO for the vendor connectors (``gateway/report/README.md``)."""

    def __init__(
        self, pool: asyncpg.Pool, pipeline, *, notify: Callable[[int], None] | None = None,
        reassembly_timeout: float = 60.0,
    ) -> None:
        self.pool = pool
        self.pipeline = pipeline
        self.notify = notify
        self.reassembly_timeout = reassembly_timeout
        self._next_expiry = 0.0

    async def receive_pdu(self, vendor_id: int, pdu: DeliverSm | DataSm) -> int | None:
        payload, ref, total, seq = _parts_of(pdu)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_expiry:
            # Look for stale sets now and then, not on every part.
            self._next_expiry = loop.time() + min(5.0, self.reassembly_timeout / 2)
            try:
                await self.expire_parts()
            except Exception:
                log.exception("event=mo_parts_expiry_failed")
        raw = passthrough_of(pdu)
        if raw is not None:
            # Not reassembled: the UDH's other elements stay with the octets.
            content = MoContent(raw.hex(), pdu.data_coding, raw, udhi=True)
            await self._receive(vendor_id, pdu.source_addr, pdu.destination_addr, content)
            return None
        if ref is None or total <= 1 or not 1 <= seq <= total:
            await self._receive(vendor_id, pdu.source_addr, pdu.destination_addr,
                                mo_content(payload, pdu.data_coding))
            return None
        key = PartSet(pdu.source_addr, pdu.destination_addr, ref, total)
        async with self.pool.acquire() as conn, conn.transaction():
            args = (key.source, key.destination, key.ref, key.total)
            await conn.execute(_LOCK_SET, *args)
            same = await conn.fetchrow(_SAME_PART, *args, seq)
            if same is not None:
                if same["taken_at"] is None or bytes(same["payload"]) == payload:
                    return None  # a repeat: of a waiting part, or of a stored message's part
                await conn.execute(_DROP_TAKEN, *args)  # the reference is reused by a new message
            await conn.execute(_ADD_PART, *args, seq, vendor_id, pdu.data_coding, payload)
            have = await conn.fetchval(_COUNT_PARTS, *args)
        if have >= total:
            await self._receive(vendor_id, key.source, key.destination, parts_set=key)
        return None

    async def expire_parts(self, now: datetime | None = None) -> list[MoResult]:
        """Store the sets whose first part is older than the reassembly timeout at ``now``.

        ``now`` defaults to the database clock; the housekeeping service calls this
        on a timer, so a set expires even when no more MO traffic arrives.
        """
        await self.pool.execute(_FORGET_TAKEN, float(self.reassembly_timeout), now)
        stale = await self.pool.fetch(_STALE_SETS, float(self.reassembly_timeout), now)
        results = []
        for row in stale:
            key = PartSet(row["source"], row["destination"], row["ref"], row["total"])
            result = await self._receive(None, key.source, key.destination, parts_set=key)
            if result is not None:
                if not result.complete:
                    log.warning("event=mo_parts_expired from=%s ref=%s total=%s", key.source,
                                key.ref, key.total)
                results.append(result)
        return results

    async def receive(
        self, vendor_id: int | None, source: str, destination: str, text: str, parts: int = 1,
    ) -> MoResult:
        """Store and act on one whole text MO (``gateway/report/README.md``)."""
        result = await self._receive(vendor_id, source, destination, MoContent(text), parts)
        assert result is not None
        return result

    async def _receive(
        self, vendor_id: int | None, source: str, destination: str,
        content: MoContent = MoContent(""), parts: int = 1, *, parts_set: PartSet | None = None,
    ) -> MoResult | None:
        """Store an MO; with ``parts_set``, the one its stored parts make (None: taken already)."""
        mo_id = new_message_id()
        decision = None
        complete = True
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if parts_set is not None:
                    # Marking the parts taken claims them: a concurrent taker finds none and stops.
                    rows = await conn.fetch(_TAKE_PARTS, parts_set.source, parts_set.destination,
                                            parts_set.ref, parts_set.total)
                    if not rows:
                        return None
                    content = _joined(rows)
                    parts, complete = len(rows), len(rows) == parts_set.total
                    vendor_id = vendor_id if vendor_id is not None else rows[0]["vendor_id"]
                mt = await conn.fetchrow(
                    """SELECT id, partner_id, origin, user_id, api_key_id, smpp_account_id, callback_url,
                              accept_mo, channel, registered_delivery
                       FROM messages WHERE destination = $1 AND sender = $2
                       ORDER BY created_at DESC LIMIT 1""",
                    source, destination,
                )
                partner_id = mt["partner_id"] if mt else None
                text = content.text
                if mt is not None and complete and not content.binary:
                    # a binary MO is no keyword: hex must not match a template by chance
                    decision = match_reply(await load_templates(conn, partner_id), text,
                                           channel="sms")
                action = None if decision is None or decision.action is Action.NONE else str(
                    decision.action)
                await conn.execute(
                    """INSERT INTO mo_messages (id, vendor_id, partner_id, mt_message_id, source,
                                                destination, text, parts, template_id, action, complete,
                                                encoding, data_coding, udhi)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
                    mo_id, vendor_id, partner_id, mt["id"] if mt else None, source, destination,
                    text, parts, decision.template_id if decision else None, action, complete,
                    "binary" if content.binary else None, content.data_coding, content.udhi,
                )
                if mt is not None and complete:
                    if mt["callback_url"] and mt["accept_mo"]:
                        await callbacks.enqueue_mo(
                            conn, url=mt["callback_url"], transaction_id=str(mt["id"]), dnis=source,
                            text=text, channel=mt["channel"], partner_id=partner_id,
                            api_key_id=mt["api_key_id"],
                            binary=content.binary, data_coding=content.data_coding, udhi=content.udhi,
                        )
                    if mt["smpp_account_id"] is not None:
                        await add_to_outbox(conn, [outbox_row(mt["smpp_account_id"], source,
                                                              destination, content)])
                        if self.notify is not None:
                            self.notify(mt["smpp_account_id"])
                    if action == Action.SUBSCRIBE:
                        await stoplist.remove(conn, partner_id, source, destination)
                        await _move_contact(conn, partner_id, source, decision, create_missing=True)
            reply_id = None
            if mt is not None and decision is not None and decision.reply_text:
                reply_id = await self._reply(mt, source, destination, decision.reply_text)
                if reply_id is not None:
                    await conn.execute("UPDATE mo_messages SET reply_message_id = $2 WHERE id = $1",
                                       mo_id, reply_id)
            if mt is not None and action == Action.UNSUBSCRIBE:
                await stoplist.add(conn, partner_id, source, destination, source="mo")
                await _move_contact(conn, partner_id, source, decision, create_missing=False)
        return MoResult(mo_id, partner_id, action, reply_id, complete)

    async def _reply(self, mt: asyncpg.Record, to: str, sender: str, text: str) -> uuid.UUID | None:
        origin = mt["origin"] if mt["origin"] in ("api", "smpp") else "api"
        (result,) = await self.pipeline.submit([Submission(
            partner_id=mt["partner_id"], origin=origin, sender=sender, destination=to, text=text,
            user_id=mt["user_id"], api_key_id=mt["api_key_id"],
            smpp_account_id=mt["smpp_account_id"], label=REPLY_LABEL,
            callback_url=mt["callback_url"],
        )])
        if isinstance(result, Accepted):
            return result.message_id
        log.info("event=mo_reply_refused to=%s reason=%s", to, result.reason)
        return None
