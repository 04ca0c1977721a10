"""SMPP 3.4 wire format: PDU objects to bytes and back.

The layout of every command is data: :data:`BODIES` maps a command id to the
ordered mandatory fields of its body (SMPP 3.4 chapter 4), and each field
names the ``command_status`` to answer when it fails to decode. At import
those tables are compiled into short step lists: runs of integer fields
become one precompiled :class:`struct.Struct`, C-Octet Strings are found
with ``bytes.find`` bounded by their maximum size. The hot path is then one
loop over a handful of steps, with no per-field objects.

Three kinds of failure are kept apart, as SMPP 3.4 §2.6 asks:

- :class:`~smpp.errors.FramingError` — ``command_length`` below 16 or above
  the configured cap (checked by :class:`FrameReader` as soon as the four
  length octets arrive, before any body is buffered). Answer
  ``generic_nack``/``ESME_RINVCMDLEN`` and close.
- :class:`~smpp.errors.UnknownCommandError` — answer
  ``generic_nack``/``ESME_RINVCMDID`` and carry on.
- :class:`~smpp.errors.BodyError` — answer the PDU's own response with the
  status of the field that failed.

This module does no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from smpp.errors import BodyError, EncodeError, FramingError, UnknownCommandError
from smpp.pdu import (
    PDU_CLASSES,
    CommandId,
    CommandStatus,
    DistributionList,
    NetworkErrorCode,
    Pdu,
    SmeAddress,
    Tag,
    UnsuccessSme,
)

__all__ = [
    "BODIES",
    "DEFAULT_MAX_COMMAND_LENGTH",
    "HEADER",
    "TLVS",
    "Field",
    "FrameReader",
    "TlvSpec",
    "decode",
    "encode",
    "peek_header",
]

S = CommandStatus

HEADER = struct.Struct(">IIII")
"""command_length, command_id, command_status, sequence_number (SMPP 3.4 §3.2)."""

_TLV_HEADER = struct.Struct(">HH")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_NEC = struct.Struct(">BH")

DEFAULT_MAX_COMMAND_LENGTH = 0x12000
"""Default cap on ``command_length``: room for a 64 KiB ``message_payload``
plus a full ``submit_multi`` header; anything larger is treated as lost framing."""

_STATUS_BY_VALUE: dict[int, CommandStatus] = {s.value: s for s in CommandStatus}


# --- field tables ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """One mandatory body field.

    ``kind`` is ``u8``/``u16``/``u32`` (integers), ``cstr`` (C-Octet String of
    at most ``size`` octets including the NUL), ``time`` (C-Octet String of
    exactly 0 or 16 characters, SMPP 3.4 §7.1), ``sm`` (``sm_length`` followed
    by up to 254 octets), ``dests`` (the ``submit_multi`` destination list) or
    ``unsuccess`` (the ``submit_multi_resp`` failure list). ``status`` is the
    ``command_status`` answered when the field cannot be decoded.
    """

    name: str
    kind: str
    status: int
    size: int = 0


def _u8(name: str, status: int) -> Field:
    return Field(name, "u8", status)


def _cstr(name: str, size: int, status: int) -> Field:
    return Field(name, "cstr", status, size)


def _time(name: str, status: int) -> Field:
    return Field(name, "time", status, 17)


# Integer fields with no status of their own can only fail by the body ending
# early, which is a length fault: ESME_RINVCMDLEN.
_LEN = S.ESME_RINVCMDLEN

_BIND = (
    _cstr("system_id", 16, S.ESME_RINVSYSID),
    _cstr("password", 9, S.ESME_RINVPASWD),
    _cstr("system_type", 13, S.ESME_RINVSYSTYP),
    _u8("interface_version", S.ESME_RBINDFAIL),
    _u8("addr_ton", S.ESME_RBINDFAIL),
    _u8("addr_npi", S.ESME_RBINDFAIL),
    _cstr("address_range", 41, S.ESME_RBINDFAIL),
)
_BIND_RESP = (_cstr("system_id", 16, S.ESME_RINVSYSID),)
_SOURCE_21 = (
    _u8("source_addr_ton", S.ESME_RINVSRCTON),
    _u8("source_addr_npi", S.ESME_RINVSRCNPI),
    _cstr("source_addr", 21, S.ESME_RINVSRCADR),
)
_DEST_21 = (
    _u8("dest_addr_ton", S.ESME_RINVDSTTON),
    _u8("dest_addr_npi", S.ESME_RINVDSTNPI),
    _cstr("destination_addr", 21, S.ESME_RINVDSTADR),
)
_SERVICE_TYPE = _cstr("service_type", 6, S.ESME_RINVSERTYP)
_MESSAGE_ID = _cstr("message_id", 65, S.ESME_RINVMSGID)
_SM_TAIL = (
    _u8("esm_class", S.ESME_RINVESMCLASS),
    _u8("protocol_id", _LEN),
    _u8("priority_flag", S.ESME_RINVPRTFLG),
    _time("schedule_delivery_time", S.ESME_RINVSCHED),
    _time("validity_period", S.ESME_RINVEXPIRY),
    _u8("registered_delivery", S.ESME_RINVREGDLVFLG),
    _u8("replace_if_present_flag", S.ESME_RINVREPFLAG),
    _u8("data_coding", _LEN),
    _u8("sm_default_msg_id", S.ESME_RINVDFTMSGID),
    Field("short_message", "sm", S.ESME_RINVMSGLEN),
)
_SHORT_MESSAGE = (_SERVICE_TYPE, *_SOURCE_21, *_DEST_21, *_SM_TAIL)

C = CommandId
BODIES: dict[int, tuple[Field, ...]] = {
    C.BIND_TRANSMITTER: _BIND,
    C.BIND_RECEIVER: _BIND,
    C.BIND_TRANSCEIVER: _BIND,
    C.BIND_TRANSMITTER_RESP: _BIND_RESP,
    C.BIND_RECEIVER_RESP: _BIND_RESP,
    C.BIND_TRANSCEIVER_RESP: _BIND_RESP,
    C.OUTBIND: (
        _cstr("system_id", 16, S.ESME_RINVSYSID),
        _cstr("password", 9, S.ESME_RINVPASWD),
    ),
    C.UNBIND: (),
    C.UNBIND_RESP: (),
    C.GENERIC_NACK: (),
    C.ENQUIRE_LINK: (),
    C.ENQUIRE_LINK_RESP: (),
    C.SUBMIT_SM: _SHORT_MESSAGE,
    C.DELIVER_SM: _SHORT_MESSAGE,
    C.SUBMIT_SM_RESP: (_MESSAGE_ID,),
    C.DELIVER_SM_RESP: (_MESSAGE_ID,),
    C.SUBMIT_MULTI: (
        _SERVICE_TYPE,
        *_SOURCE_21,
        Field("dest_addresses", "dests", S.ESME_RINVNUMDESTS),
        *_SM_TAIL,
    ),
    C.SUBMIT_MULTI_RESP: (
        _MESSAGE_ID,
        Field("unsuccess_smes", "unsuccess", _LEN),
    ),
    C.DATA_SM: (
        _SERVICE_TYPE,
        _u8("source_addr_ton", S.ESME_RINVSRCTON),
        _u8("source_addr_npi", S.ESME_RINVSRCNPI),
        _cstr("source_addr", 65, S.ESME_RINVSRCADR),
        _u8("dest_addr_ton", S.ESME_RINVDSTTON),
        _u8("dest_addr_npi", S.ESME_RINVDSTNPI),
        _cstr("destination_addr", 65, S.ESME_RINVDSTADR),
        _u8("esm_class", S.ESME_RINVESMCLASS),
        _u8("registered_delivery", S.ESME_RINVREGDLVFLG),
        _u8("data_coding", _LEN),
    ),
    C.DATA_SM_RESP: (_MESSAGE_ID,),
    C.QUERY_SM: (_MESSAGE_ID, *_SOURCE_21),
    C.QUERY_SM_RESP: (
        _MESSAGE_ID,
        _time("final_date", _LEN),
        _u8("message_state", _LEN),
        _u8("error_code", _LEN),
    ),
    C.CANCEL_SM: (_SERVICE_TYPE, _MESSAGE_ID, *_SOURCE_21, *_DEST_21),
    C.CANCEL_SM_RESP: (),
    C.REPLACE_SM: (
        _MESSAGE_ID,
        *_SOURCE_21,
        _time("schedule_delivery_time", S.ESME_RINVSCHED),
        _time("validity_period", S.ESME_RINVEXPIRY),
        _u8("registered_delivery", S.ESME_RINVREGDLVFLG),
        _u8("sm_default_msg_id", S.ESME_RINVDFTMSGID),
        Field("short_message", "sm", S.ESME_RINVMSGLEN),
    ),
    C.REPLACE_SM_RESP: (),
    C.ALERT_NOTIFICATION: (
        _u8("source_addr_ton", S.ESME_RINVSRCTON),
        _u8("source_addr_npi", S.ESME_RINVSRCNPI),
        _cstr("source_addr", 65, S.ESME_RINVSRCADR),
        _u8("esme_addr_ton", S.ESME_RINVDSTTON),
        _u8("esme_addr_npi", S.ESME_RINVDSTNPI),
        _cstr("esme_addr", 65, S.ESME_RINVDSTADR),
    ),
}
"""Command id → mandatory body fields in wire order (SMPP 3.4 chapter 4)."""

NO_BODY_ON_ERROR = frozenset({
    C.BIND_TRANSMITTER_RESP, C.BIND_RECEIVER_RESP, C.BIND_TRANSCEIVER_RESP,
    C.SUBMIT_SM_RESP, C.QUERY_SM_RESP,
})  # fmt: skip
"""Responses whose body is left out when ``command_status`` is not zero
(SMPP 3.4 §4.1.2, §4.4.2, §4.8.2)."""


@dataclass(frozen=True, slots=True)
class TlvSpec:
    """How one optional parameter's value is typed (SMPP 3.4 §5.3.2).

    ``kind``: ``u8``/``u16``/``u32`` → ``int``; ``cstr`` → ``str`` (at most
    ``max_len`` octets with the NUL); ``octets`` → ``bytes`` between
    ``min_len`` and ``max_len``; ``nec`` → :class:`NetworkErrorCode`.
    """

    tag: Tag
    kind: str
    min_len: int = 0
    max_len: int = 0


def _tlv(tag: Tag, kind: str, min_len: int = 0, max_len: int = 0) -> TlvSpec:
    size = {"u8": 1, "u16": 2, "u32": 4, "nec": 3}.get(kind)
    if size is not None:
        min_len = max_len = size
    return TlvSpec(tag, kind, min_len, max_len)


T = Tag
TLVS: dict[int, TlvSpec] = {
    spec.tag: spec
    for spec in (
        _tlv(T.DEST_ADDR_SUBUNIT, "u8"),
        _tlv(T.DEST_NETWORK_TYPE, "u8"),
        _tlv(T.DEST_BEARER_TYPE, "u8"),
        _tlv(T.DEST_TELEMATICS_ID, "u16"),
        _tlv(T.SOURCE_ADDR_SUBUNIT, "u8"),
        _tlv(T.SOURCE_NETWORK_TYPE, "u8"),
        _tlv(T.SOURCE_BEARER_TYPE, "u8"),
        _tlv(T.SOURCE_TELEMATICS_ID, "u8"),
        _tlv(T.QOS_TIME_TO_LIVE, "u32"),
        _tlv(T.PAYLOAD_TYPE, "u8"),
        _tlv(T.ADDITIONAL_STATUS_INFO_TEXT, "cstr", 1, 256),
        _tlv(T.RECEIPTED_MESSAGE_ID, "cstr", 1, 65),
        _tlv(T.MS_MSG_WAIT_FACILITIES, "u8"),
        _tlv(T.PRIVACY_INDICATOR, "u8"),
        _tlv(T.SOURCE_SUBADDRESS, "octets", 2, 23),
        _tlv(T.DEST_SUBADDRESS, "octets", 2, 23),
        _tlv(T.USER_MESSAGE_REFERENCE, "u16"),
        _tlv(T.USER_RESPONSE_CODE, "u8"),
        _tlv(T.SOURCE_PORT, "u16"),
        _tlv(T.DESTINATION_PORT, "u16"),
        _tlv(T.SAR_MSG_REF_NUM, "u16"),
        _tlv(T.LANGUAGE_INDICATOR, "u8"),
        _tlv(T.SAR_TOTAL_SEGMENTS, "u8"),
        _tlv(T.SAR_SEGMENT_SEQNUM, "u8"),
        _tlv(T.SC_INTERFACE_VERSION, "u8"),
        _tlv(T.CALLBACK_NUM_PRES_IND, "u8"),
        _tlv(T.CALLBACK_NUM_ATAG, "octets", 0, 65),
        _tlv(T.NUMBER_OF_MESSAGES, "u8"),
        _tlv(T.CALLBACK_NUM, "octets", 4, 19),
        _tlv(T.DPF_RESULT, "u8"),
        _tlv(T.SET_DPF, "u8"),
        _tlv(T.MS_AVAILABILITY_STATUS, "u8"),
        _tlv(T.NETWORK_ERROR_CODE, "nec"),
        _tlv(T.MESSAGE_PAYLOAD, "octets", 0, 0xFFFF),
        _tlv(T.DELIVERY_FAILURE_REASON, "u8"),
        _tlv(T.MORE_MESSAGES_TO_SEND, "u8"),
        _tlv(T.MESSAGE_STATE, "u8"),
        _tlv(T.USSD_SERVICE_OP, "u8"),
        _tlv(T.DISPLAY_TIME, "u8"),
        _tlv(T.SMS_SIGNAL, "u16"),
        _tlv(T.MS_VALIDITY, "u8"),
        # Zero length in SMPP 3.4; SMPP 5.0 allows one octet, so accept both.
        _tlv(T.ALERT_ON_MESSAGE_DELIVERY, "octets", 0, 1),
        _tlv(T.ITS_REPLY_TYPE, "u8"),
        _tlv(T.ITS_SESSION_INFO, "u16"),
    )
}
"""Known TLV tag → value type. Tags not listed are kept as raw ``bytes``."""


# --- compiled steps ---------------------------------------------------------------

_INTS, _CSTR, _TIME, _SM, _DESTS, _UNSUCCESS = range(6)
_INT_CODES = {"u8": "B", "u16": "H", "u32": "I"}


class _Layout:
    """A command's body compiled for speed: class, step list, attribute getter."""

    __slots__ = ("cls", "command_id", "fast", "fields", "getter", "no_body_on_error", "steps")

    def __init__(self, command_id: int, cls: type[Pdu], body: tuple[Field, ...]) -> None:
        names = [f.name for f in fields(cls)]
        expected = ["sequence_number", "command_status", "tlvs", *(f.name for f in body)]
        if names != expected:  # the table and the dataclass must agree, field for field
            raise AssertionError(f"{cls.__name__}: fields {names} != table {expected}")
        self.command_id = command_id
        self.cls = cls
        self.fields = body
        self.no_body_on_error = command_id in NO_BODY_ON_ERROR
        self.getter: Callable[[Pdu], tuple[Any, ...]] | None = None
        if body:
            getter = attrgetter(*(f.name for f in body))
            # attrgetter with one name returns the bare value; keep a tuple always.
            self.getter = getter if len(body) > 1 else (lambda pdu, g=getter: (g(pdu),))
        self.steps = _compile(body)
        self.fast = _straight_encoder(cls.__name__, self.steps)


def _compile(body: tuple[Field, ...]) -> list[tuple[int, Any, Any]]:
    """Group the fields into steps: (kind, argument, field or fields)."""
    steps: list[tuple[int, Any, Any]] = []
    run: list[Field] = []

    def flush() -> None:
        if run:
            fmt = ">" + "".join(_INT_CODES[f.kind] for f in run)
            steps.append((_INTS, struct.Struct(fmt), tuple(run)))
            run.clear()

    for f in body:
        if f.kind in _INT_CODES:
            run.append(f)
            continue
        flush()
        kind = {"cstr": _CSTR, "time": _TIME, "sm": _SM, "dests": _DESTS, "unsuccess": _UNSUCCESS}[
            f.kind
        ]
        steps.append((kind, f.size, f))
    flush()
    return steps


def _straight_encoder(name: str, steps: list[tuple[int, Any, Any]]) -> Callable[[Pdu], bytes] | None:
    """The body encoder of one command as straight-line code, or None (list fields).

    It only handles what is valid: on any doubt it raises, and :func:`encode` falls
    back to :func:`_encode_body`, which names the fault (tests check both agree).
    """
    lines = [f"def encode_{name}(pdu):"]
    parts: list[str] = []
    env: dict[str, Any] = {"_Bad": ValueError, "_U8": _U8.pack}
    for i, (kind, arg, fld) in enumerate(steps):
        if kind == _INTS:
            env[f"_S{i}"] = arg.pack
            lines.append(f"    v{i} = _S{i}({', '.join(f'pdu.{f.name}' for f in fld)})")
            parts.append(f"v{i}")
        elif kind == _CSTR or kind == _TIME:
            lines.append(f"    v{i} = pdu.{fld.name}.encode('latin-1')")
            too_long = f"len(v{i}) >= {arg}" if kind == _CSTR else f"len(v{i}) not in (0, 16)"
            lines.append(f"    if {too_long} or b'\\0' in v{i}: raise _Bad")
            parts += [f"v{i}", "b'\\0'"]
        elif kind == _SM:
            lines.append(f"    v{i} = bytes(pdu.{fld.name})")
            lines.append(f"    if len(v{i}) > 254: raise _Bad")
            parts += [f"_U8(len(v{i}))", f"v{i}"]
        else:
            return None
    if not parts:
        return None
    lines.append(f"    return b''.join(({', '.join(parts)},))")
    exec("\n".join(lines), env)  # source built above from the field tables only
    return env[f"encode_{name}"]


_LAYOUTS: dict[int, _Layout] = {
    cid: _Layout(cid, PDU_CLASSES[cid], body) for cid, body in BODIES.items()
}
_LAYOUT_BY_CLASS: dict[type[Pdu], _Layout] = {lay.cls: lay for lay in _LAYOUTS.values()}


# --- decoding ------------------------------------------------------------------------


def peek_header(data: bytes | bytearray) -> tuple[int, int, int, int]:
    """The four header fields of a frame (at least 16 octets)."""
    return HEADER.unpack_from(data, 0)


def decode(frame: bytes) -> Pdu:
    """Decode exactly one PDU from ``frame`` (its whole ``command_length``).

    Raises :class:`FramingError`, :class:`UnknownCommandError` or
    :class:`BodyError`, each carrying the status to answer.
    """
    n = len(frame)
    if n < 16:
        raise FramingError("PDU shorter than its header", status=S.ESME_RINVCMDLEN)
    length, command_id, status, seq = HEADER.unpack_from(frame, 0)
    if length != n:
        raise FramingError(
            f"command_length {length} but {n} octets",
            status=S.ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=seq,
        )
    layout = _LAYOUTS.get(command_id)
    if layout is None:
        raise UnknownCommandError(
            f"unknown command_id 0x{command_id:08X}",
            status=S.ESME_RINVCMDID,
            command_id=command_id,
            sequence_number=seq,
        )
    status = _STATUS_BY_VALUE.get(status, status)
    if n == 16:
        # Header only: no body at all. Responses often omit theirs (on error,
        # or an empty deliver_sm_resp), so every field takes its default.
        if not layout.steps or command_id & 0x80000000:
            return layout.cls(seq, status)
    if status and layout.no_body_on_error:
        try:
            return _decode_body(layout, frame, seq, status)
        except BodyError:
            # SMPP 3.4 says no body comes with an error status; whatever came is ignored.
            return layout.cls(seq, status)
    return _decode_body(layout, frame, seq, status)


def _decode_body(layout: _Layout, data: bytes, seq: int, status: int) -> Pdu:
    values: list[Any] = []
    append = values.append
    pos = 16
    for kind, arg, fld in layout.steps:
        if kind == _INTS:
            try:
                values += arg.unpack_from(data, pos)
            except struct.error:
                raise _truncated(layout, fld, data, pos, seq) from None
            pos += arg.size
        elif kind == _CSTR:
            nul = data.find(b"\0", pos, pos + arg)
            if nul < 0:
                raise _bad(layout, fld, seq, f"no NUL within {arg} octets")
            append(data[pos:nul].decode("latin-1"))
            pos = nul + 1
        elif kind == _TIME:
            nul = data.find(b"\0", pos, pos + 17)
            if nul != pos and nul != pos + 16:
                raise _bad(layout, fld, seq, "time must be empty or 16 characters")
            append(data[pos:nul].decode("latin-1"))
            pos = nul + 1
        elif kind == _SM:
            if pos >= len(data):
                raise _bad(layout, fld, seq, "sm_length missing")
            end = pos + 1 + data[pos]
            if end > len(data):
                raise _bad(layout, fld, seq, "sm_length runs past the PDU")
            append(data[pos + 1 : end])
            pos = end
        elif kind == _DESTS:
            value, pos = _decode_dests(layout, fld, data, pos, seq)
            append(value)
        else:
            value, pos = _decode_unsuccess(layout, fld, data, pos, seq)
            append(value)
    if pos < len(data):
        return layout.cls(seq, status, _decode_tlvs(layout, data, pos, seq), *values)
    return layout.cls(seq, status, {}, *values)


def _bad(layout: _Layout, fld: Field, seq: int, why: str, status: int | None = None) -> BodyError:
    return BodyError(
        f"{layout.cls.__name__}.{fld.name}: {why}",
        status=fld.status if status is None else status,
        command_id=layout.command_id,
        sequence_number=seq,
        field=fld.name,
    )


def _truncated(
    layout: _Layout, run: tuple[Field, ...], data: bytes, pos: int, seq: int
) -> BodyError:
    """Name the first integer of a run that the body cuts short."""
    for fld in run:
        size = struct.calcsize(">" + _INT_CODES[fld.kind])
        if pos + size > len(data):
            return _bad(layout, fld, seq, "body ends inside this field")
        pos += size
    raise AssertionError("unreachable: run fitted")


def _decode_dests(
    layout: _Layout, fld: Field, data: bytes, pos: int, seq: int
) -> tuple[list[SmeAddress | DistributionList], int]:
    # SMPP 3.4 §4.5.1: number_of_dests (max 254), then dest_flag-tagged entries.
    n = len(data)
    if pos >= n:
        raise _bad(layout, fld, seq, "number_of_dests missing")
    count = data[pos]
    pos += 1
    if count > 254:
        raise _bad(layout, fld, seq, f"number_of_dests {count} > 254")
    dests: list[SmeAddress | DistributionList] = []
    for _ in range(count):
        if pos >= n:
            raise _bad(layout, fld, seq, "dest_flag missing", S.ESME_RINVDESTFLAG)
        flag = data[pos]
        pos += 1
        if flag == 1:
            if pos + 2 > n:
                raise _bad(layout, fld, seq, "dest_addr_ton/npi missing", S.ESME_RINVDSTTON)
            ton, npi = data[pos], data[pos + 1]
            pos += 2
            nul = data.find(b"\0", pos, pos + 21)
            if nul < 0:
                raise _bad(layout, fld, seq, "bad destination_addr", S.ESME_RINVDSTADR)
            dests.append(SmeAddress(ton, npi, data[pos:nul].decode("latin-1")))
        elif flag == 2:
            nul = data.find(b"\0", pos, pos + 21)
            if nul < 0:
                raise _bad(layout, fld, seq, "bad dl_name", S.ESME_RINVDLNAME)
            dests.append(DistributionList(data[pos:nul].decode("latin-1")))
        else:
            raise _bad(layout, fld, seq, f"dest_flag {flag}", S.ESME_RINVDESTFLAG)
        pos = nul + 1
    return dests, pos


def _decode_unsuccess(
    layout: _Layout, fld: Field, data: bytes, pos: int, seq: int
) -> tuple[list[UnsuccessSme], int]:
    # SMPP 3.4 §4.5.2: no_unsuccess, then ton, npi, address, error_status_code.
    n = len(data)
    if pos >= n:
        raise _bad(layout, fld, seq, "no_unsuccess missing")
    count = data[pos]
    pos += 1
    smes: list[UnsuccessSme] = []
    for _ in range(count):
        if pos + 2 > n:
            raise _bad(layout, fld, seq, "entry cut short")
        ton, npi = data[pos], data[pos + 1]
        pos += 2
        nul = data.find(b"\0", pos, pos + 21)
        if nul < 0 or nul + 5 > n:
            raise _bad(layout, fld, seq, "entry cut short")
        (code,) = _U32.unpack_from(data, nul + 1)
        smes.append(UnsuccessSme(ton, npi, data[pos:nul].decode("latin-1"), code))
        pos = nul + 5
    return smes, pos


def _decode_tlvs(layout: _Layout, data: bytes, pos: int, seq: int) -> dict[int, Any]:
    """Optional parameters (SMPP 3.4 §3.2.1.2, §5.3)."""
    tlvs: dict[int, Any] = {}
    end = len(data)
    while pos < end:
        if end - pos < 4:
            raise _tlv_error(layout, seq, "truncated TLV header", S.ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEADER.unpack_from(data, pos)
        start = pos + 4
        pos = start + length
        if pos > end:
            raise _tlv_error(
                layout, seq, f"TLV 0x{tag:04X} runs past the PDU", S.ESME_RINVOPTPARSTREAM
            )
        spec = TLVS.get(tag)
        if spec is None:
            # SMPP 3.4 §3.2.1.3: unknown TLVs are ignored by the protocol; we keep
            # them so a relay can pass them on unchanged.
            tlvs[tag] = data[start:pos]
            continue
        if not spec.min_len <= length <= spec.max_len:
            raise _tlv_error(
                layout, seq, f"{spec.tag.name} has length {length}", S.ESME_RINVPARLEN, spec
            )
        kind = spec.kind
        if kind == "u8":
            value: Any = data[start]
        elif kind == "octets":
            value = data[start:pos]
        elif kind == "cstr":
            # The NUL is required by §5.3.2, but some SMSCs leave it out of
            # receipted_message_id; accept both and always write it back.
            raw = data[start:pos]
            nul = raw.find(b"\0")
            value = (raw if nul < 0 else raw[:nul]).decode("latin-1")
        elif kind == "u16":
            (value,) = _U16.unpack_from(data, start)
        elif kind == "u32":
            (value,) = _U32.unpack_from(data, start)
        else:
            value = NetworkErrorCode(*_NEC.unpack_from(data, start))
        tlvs[spec.tag] = value
    return tlvs


def _tlv_error(
    layout: _Layout, seq: int, why: str, status: int, spec: TlvSpec | None = None
) -> BodyError:
    return BodyError(
        f"{layout.cls.__name__}: {why}",
        status=status,
        command_id=layout.command_id,
        sequence_number=seq,
        field=spec.tag.name.lower() if spec else "tlvs",
    )


# --- encoding ----------------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """The wire octets of ``pdu``, header included.

    Raises :class:`~smpp.errors.EncodeError` when a value does not fit its
    field (too long, out of range, not encodable as Latin-1).
    """
    layout = _LAYOUT_BY_CLASS.get(type(pdu))
    if layout is None:
        raise EncodeError(f"not an SMPP 3.4 PDU: {type(pdu).__name__}")
    status = pdu.command_status
    if status and layout.no_body_on_error:
        body = b""
    else:
        body = b""
        if layout.fast is not None:
            try:
                body = layout.fast(pdu)
            except Exception:
                body = b""  # the general encoder below says what is wrong
        parts: list[bytes] = [body]
        if not body and layout.getter is not None:
            _encode_body(layout, pdu, parts)
        if pdu.tlvs:
            _encode_tlvs(layout, pdu.tlvs, parts)
        body = b"".join(parts)
    try:
        header = HEADER.pack(16 + len(body), layout.command_id, status, pdu.sequence_number)
    except struct.error:
        raise EncodeError(
            f"{layout.cls.__name__}: command_status/sequence_number out of range "
            f"({status!r}, {pdu.sequence_number!r})"
        ) from None
    return header + body


def _encode_body(layout: _Layout, pdu: Pdu, parts: list[bytes]) -> None:
    values = layout.getter(pdu)  # type: ignore[misc]
    append = parts.append
    i = 0
    for kind, arg, fld in layout.steps:
        if kind == _INTS:
            k = len(fld)
            try:
                append(arg.pack(*values[i : i + k]))
            except struct.error:
                raise _range_error(layout, fld, values[i : i + k]) from None
            i += k
            continue
        value = values[i]
        i += 1
        if kind == _CSTR or kind == _TIME:
            raw = _text(layout, fld, value)
            if kind == _CSTR:
                if len(raw) >= arg:
                    raise EncodeError(f"{layout.cls.__name__}.{fld.name}: longer than {arg - 1}")
            elif len(raw) not in (0, 16):
                raise EncodeError(f"{layout.cls.__name__}.{fld.name}: time must be 0 or 16 chars")
            if b"\0" in raw:
                raise EncodeError(f"{layout.cls.__name__}.{fld.name}: contains NUL")
            append(raw)
            append(b"\0")
        elif kind == _SM:
            if len(value) > 254:
                # SMPP 3.4 §4.4.1: longer content goes in message_payload.
                raise EncodeError(f"{layout.cls.__name__}.short_message: {len(value)} > 254")
            append(_U8.pack(len(value)))
            append(bytes(value))
        elif kind == _DESTS:
            _encode_dests(layout, fld, value, parts)
        else:
            _encode_unsuccess(layout, fld, value, parts)


def _text(layout: _Layout, fld: Field | str, value: Any) -> bytes:
    try:
        return value.encode("latin-1")
    except AttributeError:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        name = fld if isinstance(fld, str) else fld.name
        raise EncodeError(f"{layout.cls.__name__}.{name}: expected str, got {value!r}") from None
    except UnicodeEncodeError:
        name = fld if isinstance(fld, str) else fld.name
        raise EncodeError(f"{layout.cls.__name__}.{name}: not Latin-1: {value!r}") from None


def _cstring(layout: _Layout, name: str, value: Any, size: int) -> bytes:
    raw = _text(layout, name, value)
    if len(raw) >= size or b"\0" in raw:
        raise EncodeError(f"{layout.cls.__name__}.{name}: {value!r} does not fit C-string({size})")
    return raw + b"\0"


def _range_error(layout: _Layout, run: tuple[Field, ...], values: tuple[Any, ...]) -> EncodeError:
    for fld, value in zip(run, values, strict=True):
        try:
            struct.pack(">" + _INT_CODES[fld.kind], value)
        except struct.error:
            return EncodeError(f"{layout.cls.__name__}.{fld.name}: {value!r} out of range")
    return EncodeError(f"{layout.cls.__name__}: bad integer field")


def _encode_dests(layout: _Layout, fld: Field, dests: Any, parts: list[bytes]) -> None:
    if len(dests) > 254:
        raise EncodeError(f"{layout.cls.__name__}.dest_addresses: {len(dests)} > 254")
    parts.append(_U8.pack(len(dests)))
    for dest in dests:
        if isinstance(dest, SmeAddress):
            try:
                parts.append(struct.pack(">BBB", 1, dest.dest_addr_ton, dest.dest_addr_npi))
            except struct.error:
                raise EncodeError(f"{layout.cls.__name__}.dest_addresses: {dest!r}") from None
            parts.append(_cstring(layout, "destination_addr", dest.destination_addr, 21))
        elif isinstance(dest, DistributionList):
            parts.append(b"\x02")
            parts.append(_cstring(layout, "dl_name", dest.dl_name, 21))
        else:
            raise EncodeError(f"{layout.cls.__name__}.dest_addresses: {dest!r}")


def _encode_unsuccess(layout: _Layout, fld: Field, smes: Any, parts: list[bytes]) -> None:
    if len(smes) > 255:
        raise EncodeError(f"{layout.cls.__name__}.unsuccess_smes: {len(smes)} > 255")
    parts.append(_U8.pack(len(smes)))
    for sme in smes:
        try:
            parts.append(struct.pack(">BB", sme.dest_addr_ton, sme.dest_addr_npi))
            parts.append(_cstring(layout, "destination_addr", sme.destination_addr, 21))
            parts.append(_U32.pack(sme.error_status_code))
        except (struct.error, AttributeError):
            raise EncodeError(f"{layout.cls.__name__}.unsuccess_smes: {sme!r}") from None


def _encode_tlvs(layout: _Layout, tlvs: dict[int, Any], parts: list[bytes]) -> None:
    append = parts.append
    for tag, value in tlvs.items():
        spec = TLVS.get(tag)
        if spec is None or (isinstance(value, bytes | bytearray) and spec.kind != "octets"):
            # Unknown tags (and raw values given for known ones) pass through as octets.
            if not isinstance(value, bytes | bytearray):
                raise EncodeError(f"TLV 0x{tag:04X}: unknown tag needs bytes, got {value!r}")
            raw = bytes(value)
        else:
            raw = _tlv_value(layout, spec, value)
        if len(raw) > 0xFFFF:
            raise EncodeError(f"TLV 0x{tag:04X}: value longer than 65535 octets")
        try:
            append(_TLV_HEADER.pack(tag, len(raw)))
        except struct.error:
            raise EncodeError(f"TLV tag {tag!r} out of range") from None
        append(raw)


def _tlv_value(layout: _Layout, spec: TlvSpec, value: Any) -> bytes:
    kind = spec.kind
    name = spec.tag.name.lower()
    try:
        if kind == "u8":
            return _U8.pack(value)
        if kind == "u16":
            return _U16.pack(value)
        if kind == "u32":
            return _U32.pack(value)
        if kind == "nec":
            return _NEC.pack(*value)
    except (struct.error, TypeError):
        raise EncodeError(f"TLV {name}: {value!r} out of range") from None
    if kind == "cstr":
        return _cstring(layout, name, value, spec.max_len)
    raw = bytes(value)
    if not spec.min_len <= len(raw) <= spec.max_len:
        raise EncodeError(f"TLV {name}: length {len(raw)} outside {spec.min_len}..{spec.max_len}")
    return raw


# --- framing -------------------------------------------------------------------------


class FrameReader:
    """Cut a TCP byte stream into whole PDU frames.

    ``command_length`` is checked as soon as its four octets arrive, before
    any of the body is buffered, so a peer cannot make us hold more than
    ``max_length`` octets. On a bad length, :meth:`feed` still returns the
    frames that came before it and sets :attr:`error`; from then on the
    stream is out of step and further input is ignored.
    """

    __slots__ = ("_buf", "error", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> None:
        self.max_length = max_length
        self._buf: bytes | bytearray = b""
        self.error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Octets held for an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received octets; return the frames they complete, in order."""
        if self.error is not None:
            return []
        if self._buf:
            buf = self._buf
            buf += data  # bytearray: amortised append
        else:
            buf = data
        n = len(buf)
        pos = 0
        frames: list[bytes] = []
        while n - pos >= 4:
            (length,) = _U32.unpack_from(buf, pos)
            if length < 16 or length > self.max_length:
                command_id = _U32.unpack_from(buf, pos + 4)[0] if n - pos >= 8 else None
                seq = _U32.unpack_from(buf, pos + 12)[0] if n - pos >= 16 else 0
                self.error = FramingError(
                    f"command_length {length} outside 16..{self.max_length}",
                    status=S.ESME_RINVCMDLEN,
                    command_id=command_id,
                    sequence_number=seq,
                )
                self._buf = b""
                return frames
            if n - pos < length:
                break
            frames.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos == n:
            self._buf = b""
        elif pos == 0 and isinstance(buf, bytearray):
            self._buf = buf
        else:
            self._buf = bytearray(buf[pos:])
        return frames
