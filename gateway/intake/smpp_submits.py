"""What an SMPP request means to Herald, without I/O: PDU → :class:`Submission`, times,
refusals, ``query_sm`` states, ``replace_sm`` values (rules: ``gateway/intake/README.md``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.accept.pipeline import Accepted, Rejected, Submission
from gateway.intake.smpp_accounts import SmppAccount
from gateway.report.receipts_out import receipt_state
from gateway.store.messages import FINAL, Message, Status
from smpp.encoding import Encoding, alphabet_of, decode, message_class_of
from smpp.pdu import (
    CommandStatus,
    DataSm,
    EsmClass,
    MessageState,
    ReplaceSm,
    SubmitMulti,
    SubmitSm,
    Tag,
)
from smpp.segments import count_segments
from smpp.times import TimeFormatError, parse_time
from smpp.udh import IEI_CONCAT_8, IEI_CONCAT_16, parse_udh

log = logging.getLogger("herald.smpp")
S = CommandStatus

# Not final yet (final statuses answer as their receipt: gateway.report.receipts_out.receipt_state).
_QUERY_STATE = {
    Status.PREPARED: MessageState.ENROUTE,
    Status.BILLED: MessageState.ENROUTE,
    Status.SENT: MessageState.ENROUTE,
}

MAX_VALIDITY = timedelta(days=7)
"""The longest Herald keeps a message waiting to be sent, from when it became due."""
MAX_SCHEDULE_AHEAD = timedelta(days=30)
"""The furthest ahead a message may be scheduled: it is charged at today's prices."""


@dataclass(frozen=True, slots=True)
class Timing:
    """When a message may be sent (None: now) and until when (None: no limit)."""

    scheduled_for: datetime | None = None
    valid_until: datetime | None = None


def read_times(schedule: str, validity: str, now: datetime) -> tuple[datetime | None, datetime | None] | int:
    """The instants ``schedule_delivery_time`` and ``validity_period`` name (None: NULL),
    or the ``command_status`` refusing them (SMPP 3.4 §5.1.3). Pure.

    A schedule more than :data:`MAX_SCHEDULE_AHEAD` after ``now`` is refused.
    """
    try:
        scheduled = parse_time(schedule, now)
    except TimeFormatError:
        return S.ESME_RINVSCHED
    if scheduled is not None and scheduled - now > MAX_SCHEDULE_AHEAD:
        return S.ESME_RINVSCHED
    try:
        valid = parse_time(validity, now)
    except TimeFormatError:
        return S.ESME_RINVEXPIRY
    return scheduled, valid


def due(scheduled: datetime | None, now: datetime) -> datetime | None:
    """The schedule to store: None (now) for no schedule or one already past."""
    return scheduled if scheduled is not None and scheduled > now else None


def capped(valid_until: datetime | None, scheduled_for: datetime | None, now: datetime) -> datetime | None:
    """``valid_until`` shortened to :data:`MAX_VALIDITY` after the message is due."""
    if valid_until is None:
        return None
    return min(valid_until, (scheduled_for or now) + MAX_VALIDITY)


def timing_of(pdu: SubmitSm | SubmitMulti | DataSm, now: datetime) -> Timing | int:
    """A submitted message's :class:`Timing`, or the ``command_status`` refusing it. Pure."""
    if isinstance(pdu, DataSm):
        # data_sm has no time fields: qos_time_to_live is seconds from submission (§5.3.2.9).
        ttl = pdu.tlvs.get(Tag.QOS_TIME_TO_LIVE)
        return Timing(None, capped(now + timedelta(seconds=int(ttl)), None, now) if ttl else None)
    times = read_times(pdu.schedule_delivery_time, pdu.validity_period, now)
    if isinstance(times, int):
        return times
    scheduled = due(times[0], now)
    return Timing(scheduled, capped(times[1], scheduled, now))


def _split_info(pdu: SubmitSm | DataSm) -> tuple[bytes, dict[str, Any]]:
    """The payload without UDH, and the ``concat_*`` fields of a :class:`Submission` when the
    client split the message itself (none otherwise)."""
    data = bytes(pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b"")
    if pdu.esm_class & EsmClass.UDHI and data:
        user_data = parse_udh(data)  # UdhError (a ValueError) → ESME_RINVESMCLASS by the caller
        concat = user_data.concat
        if concat is not None and concat.total > 1:
            return user_data.payload, _concat(concat.reference, concat.total, concat.sequence,
                                              concat.wide_reference)
        return user_data.payload, {}
    total = pdu.tlvs.get(Tag.SAR_TOTAL_SEGMENTS)
    if total and int(total) > 1:
        ref = int(pdu.tlvs.get(Tag.SAR_MSG_REF_NUM) or 0)
        seq = int(pdu.tlvs.get(Tag.SAR_SEGMENT_SEQNUM) or 1)
        # SAR references are 16 bits: sent on as a 16-bit UDH reference.
        return data, _concat(ref, int(total), seq, True)
    return data, {}


def _concat(reference: int, total: int, sequence: int, wide: bool) -> dict[str, Any]:
    return {"concat_ref": reference, "concat_total": total, "concat_seq": sequence,
            "concat_wide": wide}


def passthrough_of(pdu: SubmitSm | DataSm) -> tuple[bytes, bool] | None:
    """(octets, UDHI) of a message Herald must carry exactly as written, or None. Pure.

    Binary ``data_coding`` cannot be read as text, and a UDH element Herald does
    not rebuild (anything but concatenation) would be lost by re-encoding.
    Raises :class:`~smpp.udh.UdhError` (a ValueError) on a malformed UDH.
    """
    data = bytes(pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b"")
    udhi = bool(pdu.esm_class & EsmClass.UDHI) and bool(data)
    foreign = udhi and any(e.iei not in (IEI_CONCAT_8, IEI_CONCAT_16)
                           for e in parse_udh(data).elements)
    if foreign or alphabet_of(pdu.data_coding) == Encoding.BINARY:
        return data, udhi
    return None


def field_refusal(pdu: SubmitSm | SubmitMulti | ReplaceSm) -> int | None:
    """The ``command_status`` refusing a field Herald does not serve, or None. Pure.

    ``sm_default_msg_id`` names a canned message, and Herald has none (SMPP 3.4
    §5.2.19); ``replace_if_present_flag`` values above 1 are reserved (§5.2.18).
    """
    if pdu.sm_default_msg_id:
        return S.ESME_RINVDFTMSGID
    if getattr(pdu, "replace_if_present_flag", 0) > 1:
        return S.ESME_RINVREPFLAG
    return None


def replaceable(sub: Submission) -> bool:
    """A message Herald encodes itself, whole: neither a part the client split nor binary
    octets passed through (``gateway/intake/README.md``)."""
    return sub.concat_total is None and sub.encoding != "binary"


def submission_of(
    account: SmppAccount, session_id: str, pdu: SubmitSm | DataSm, destination: str | None = None,
    *, timing: Timing | None = None,
) -> Submission:
    """The pipeline's view of a ``submit_sm``/``data_sm`` (raises ValueError on a bad UDH).

    ``timing`` (from :func:`timing_of`) sets the schedule and the validity.
    """
    flash = message_class_of(pdu.data_coding) == 0
    extra: dict[str, Any] = {}
    raw = passthrough_of(pdu)
    if raw is not None:
        data, udhi = raw
        text = data.hex()
        extra = {"parts": 1, "encoding": "binary", "data_coding": pdu.data_coding, "udhi": udhi}
    else:
        payload, extra = _split_info(pdu)
        text = decode(payload, pdu.data_coding)
        if extra:  # the client's own part: sent as it is, in the client's alphabet
            alphabet = str(alphabet_of(pdu.data_coding))
            encoding = alphabet if alphabet in ("gsm7", "latin1", "ucs2") else "ucs2"
            extra.update(parts=1, encoding=encoding, data_coding=pdu.data_coding)
    return Submission(
        partner_id=account.partner_id, origin="smpp", sender=pdu.source_addr,
        destination=destination if destination is not None else pdu.destination_addr,
        text=text, user_id=account.user_id, smpp_account_id=account.id, smpp_session=session_id,
        flash=flash, registered_delivery=pdu.registered_delivery,
        # Kept for replace_if_present_flag, which matches on it (§5.2.18).
        service_type=pdu.service_type or None,
        valid_until=timing.valid_until if timing else None,
        scheduled_for=timing.scheduled_for if timing else None,
        smpp_data_coding=pdu.data_coding, **extra,
    )


def query_state(message: Message) -> MessageState:
    """``message_state`` for ``query_sm`` (SMPP 3.4 §5.2.28).

    Waiting, scheduled or sent: ENROUTE. Final: as its receipt says
    (:func:`gateway.report.receipts_out.receipt_state`, EXPIRED past the validity period).
    """
    if message.status in FINAL:
        return receipt_state(message)
    return _QUERY_STATE[message.status]


@dataclass(frozen=True, slots=True)
class Replacement:
    """What a ``replace_sm`` writes over a queued message."""

    text: str
    encoding: str
    data_coding: int
    registered_delivery: int
    scheduled_for: datetime | None
    valid_until: datetime | None


def replacement(message: Message, pdu: ReplaceSm, now: datetime) -> Replacement | int:
    """The new values ``replace_sm`` gives ``message``, or the ``command_status`` refusing
    it (SMPP 3.4 §4.10; the rules: ``gateway/intake/README.md``). Pure: whether the message may
    still be replaced is the caller's question."""
    if message.concat_total is not None or message.encoding == "binary":
        return S.ESME_RREPLACEFAIL
    times = read_times(pdu.schedule_delivery_time, pdu.validity_period, now)
    if isinstance(times, int):
        return times
    # §4.10.1: NULL keeps the original schedule / validity period.
    scheduled = message.scheduled_for if pdu.schedule_delivery_time == "" else due(times[0], now)
    valid = message.valid_until if pdu.validity_period == "" else capped(times[1], scheduled, now)
    coding = message.smpp_data_coding if message.smpp_data_coding is not None else message.data_coding
    text = decode(bytes(pdu.short_message), coding)
    if not text.strip():
        return S.ESME_RINVMSGLEN
    seg = count_segments(text, flash=message.flash)
    if seg.parts != message.parts:
        return S.ESME_RREPLACEFAIL  # charged for message.parts: not charged again
    return Replacement(text, str(seg.encoding), seg.data_coding, pdu.registered_delivery,
                       scheduled, valid)


def reply_of(result: Accepted | Rejected) -> str | int:
    """The ``submit_sm_resp`` a pipeline result makes: the message id, or the refusal's status."""
    return str(result.message_id) if isinstance(result, Accepted) else result.smpp_status


