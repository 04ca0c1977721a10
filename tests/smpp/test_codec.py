"""SMPP 3.4 codec: hex tables checked both ways, error mappings, round trips."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smpp.codec import (
    _LAYOUT_BY_CLASS,
    _LAYOUTS,
    BODIES,
    NO_BODY_ON_ERROR,
    TLVS,
    FrameReader,
    _encode_body,
    decode,
    encode,
)
from smpp.errors import BodyError, DecodeError, EncodeError, FramingError, UnknownCommandError
from smpp.pdu import (
    PDU_CLASSES,
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    NetworkErrorCode,
    Outbind,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Unbind,
    UnbindResp,
    UnsuccessSme,
    status_name,
)

S = CommandStatus


def frame(command_id: int, status: int, seq: int, body: str = "") -> str:
    """Hex of a whole PDU: the header's length is the only computed part."""
    raw = bytes.fromhex(body.replace(" ", "").replace("\n", ""))
    return (struct.pack(">IIII", 16 + len(raw), command_id, status, seq) + raw).hex()


def c(text: str) -> str:
    """Hex of a C-Octet String."""
    return text.encode("latin-1").hex() + "00"


SUBMIT_BODY = (
    "00"  # service_type ""
    "05 00"
    + c("Herald")  # source ton alphanumeric, npi unknown
    + "01 01"
    + c("447700900123")  # destination international / ISDN
    + "00 00 00"  # esm_class, protocol_id, priority_flag
    "00 00"  # schedule_delivery_time, validity_period (NULL)
    "01 00 00 00"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    "05" + b"Hello".hex()
)

SUBMIT = SubmitSm(
    sequence_number=7,
    source_addr_ton=5,
    source_addr="Herald",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="447700900123",
    registered_delivery=1,
    short_message=b"Hello",
)

RECEIPT_TEXT = b"id:abc123 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello"

# (name, PDU, hex) — every SMPP 3.4 command and its response.
TABLE: list[tuple[str, object, str]] = [
    (
        "bind_transmitter",
        BindTransmitter(sequence_number=1, system_id="herald", password="secret"),
        frame(0x02, 0, 1, c("herald") + c("secret") + "00" + "34 00 00 00"),
    ),
    (
        "bind_transmitter_resp with sc_interface_version",
        BindTransmitterResp(
            sequence_number=1, system_id="SMSC", tlvs={Tag.SC_INTERFACE_VERSION: 0x34}
        ),
        frame(0x80000002, 0, 1, c("SMSC") + "0210 0001 34"),
    ),
    (
        "bind_receiver",
        BindReceiver(
            sequence_number=2,
            system_id="rx",
            password="pw",
            system_type="VMA",
            addr_ton=1,
            addr_npi=1,
            address_range="^44",
        ),
        frame(0x01, 0, 2, c("rx") + c("pw") + c("VMA") + "34 01 01" + c("^44")),
    ),
    (
        "bind_receiver_resp refused: no body",
        BindReceiverResp(sequence_number=2, command_status=S.ESME_RINVPASWD),
        frame(0x80000001, 0x0E, 2),
    ),
    (
        "bind_transceiver",
        BindTransceiver(sequence_number=3, system_id="trx", password="pw"),
        frame(0x09, 0, 3, c("trx") + c("pw") + "00 34 00 00 00"),
    ),
    (
        "bind_transceiver_resp",
        BindTransceiverResp(sequence_number=3, system_id="SMSC"),
        frame(0x80000009, 0, 3, c("SMSC")),
    ),
    (
        "outbind",
        Outbind(sequence_number=4, system_id="smsc1", password="pw"),
        frame(0x0B, 0, 4, c("smsc1") + c("pw")),
    ),
    ("unbind", Unbind(sequence_number=5), frame(0x06, 0, 5)),
    ("unbind_resp", UnbindResp(sequence_number=5), frame(0x80000006, 0, 5)),
    (
        "generic_nack",
        GenericNack(sequence_number=6, command_status=S.ESME_RINVCMDID),
        frame(0x80000000, 3, 6),
    ),
    ("submit_sm", SUBMIT, frame(0x04, 0, 7, SUBMIT_BODY)),
    (
        "submit_sm with SAR TLVs and an unknown TLV kept",
        SubmitSm(
            sequence_number=8,
            source_addr="Herald",
            destination_addr="447700900123",
            esm_class=0,
            data_coding=8,
            short_message="Привет".encode("utf-16-be"),
            tlvs={
                Tag.SAR_MSG_REF_NUM: 0x1234,
                Tag.SAR_TOTAL_SEGMENTS: 2,
                Tag.SAR_SEGMENT_SEQNUM: 1,
                0x1501: b"\xde\xad",
            },
        ),
        frame(
            0x04,
            0,
            8,
            "00 00 00"
            + c("Herald")
            + "00 00"
            + c("447700900123")
            + "00 00 00 00 00 00 00 08 00"
            + "0c"
            + "Привет".encode("utf-16-be").hex()
            + "020c 0002 1234"
            + "020e 0001 02"
            + "020f 0001 01"
            + "1501 0002 dead",
        ),
    ),
    (
        "submit_sm with message_payload",
        SubmitSm(
            sequence_number=9,
            destination_addr="1",
            tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 300},
        ),
        frame(
            0x04,
            0,
            9,
            "00 00 00 00 00 00" + c("1") + "00 00 00 00 00 00 00 00 00" + "00"
            "0424 012c" + "78" * 300,
        ),
    ),
    (
        "submit_sm with schedule and validity",
        SubmitSm(
            sequence_number=10,
            destination_addr="1",
            schedule_delivery_time="240101120000004+",
            validity_period="000001000000000R",
        ),
        frame(
            0x04,
            0,
            10,
            "00 00 00 00 00 00"
            + c("1")
            + "00 00 00"
            + c("240101120000004+")
            + c("000001000000000R")
            + "00 00 00 00 00",
        ),
    ),
    (
        "submit_sm_resp",
        SubmitSmResp(sequence_number=7, message_id="abc123"),
        frame(0x80000004, 0, 7, c("abc123")),
    ),
    (
        "submit_sm_resp throttled: no body",
        SubmitSmResp(sequence_number=7, command_status=S.ESME_RTHROTTLED),
        frame(0x80000004, 0x58, 7),
    ),
    (
        "deliver_sm receipt",
        DeliverSm(
            sequence_number=11,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            dest_addr_ton=5,
            destination_addr="Herald",
            esm_class=0x04,
            short_message=RECEIPT_TEXT,
            tlvs={
                Tag.RECEIPTED_MESSAGE_ID: "abc123",
                Tag.MESSAGE_STATE: 2,
                Tag.NETWORK_ERROR_CODE: NetworkErrorCode(3, 0x0102),
            },
        ),
        frame(
            0x05,
            0,
            11,
            "00 01 01"
            + c("447700900123")
            + "05 00"
            + c("Herald")
            + "04 00 00 00 00 00 00 00 00"
            + f"{len(RECEIPT_TEXT):02x}"
            + RECEIPT_TEXT.hex()
            + "001e 0007"
            + c("abc123")
            + "0427 0001 02"
            + "0423 0003 030102",
        ),
    ),
    (
        "deliver_sm_resp",
        DeliverSmResp(sequence_number=11),
        frame(0x80000005, 0, 11, "00"),
    ),
    (
        "submit_multi",
        SubmitMulti(
            sequence_number=12,
            source_addr="Herald",
            dest_addresses=[SmeAddress(1, 1, "4477"), DistributionList("friends")],
            short_message=b"Hi",
        ),
        frame(
            0x21,
            0,
            12,
            "00 00 00"
            + c("Herald")
            + "02"
            + "01 01 01"
            + c("4477")
            + "02"
            + c("friends")
            + "00 00 00 00 00 00 00 00 00"
            + "02 4869",
        ),
    ),
    (
        "submit_multi_resp",
        SubmitMultiResp(
            sequence_number=12,
            message_id="m1",
            unsuccess_smes=[UnsuccessSme(1, 1, "4477", S.ESME_RINVDSTADR)],
        ),
        frame(0x80000021, 0, 12, c("m1") + "01" + "01 01" + c("4477") + "0000000b"),
    ),
    (
        "data_sm",
        DataSm(
            sequence_number=13,
            service_type="WAP",
            source_addr="Herald",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900123",
            registered_delivery=1,
            tlvs={Tag.MESSAGE_PAYLOAD: b"data", Tag.SOURCE_PORT: 9200},
        ),
        frame(
            0x103,
            0,
            13,
            c("WAP")
            + "00 00"
            + c("Herald")
            + "01 01"
            + c("447700900123")
            + "00 01 00"
            + "0424 0004 64617461"
            + "020a 0002 23f0",
        ),
    ),
    (
        "data_sm_resp with failure TLVs",
        DataSmResp(
            sequence_number=13,
            command_status=S.ESME_RDELIVERYFAILURE,
            message_id="",
            tlvs={Tag.DELIVERY_FAILURE_REASON: 1, Tag.ADDITIONAL_STATUS_INFO_TEXT: "busy"},
        ),
        frame(0x80000103, 0xFE, 13, "00" + "0425 0001 01" + "001d 0005" + c("busy")),
    ),
    (
        "query_sm",
        QuerySm(sequence_number=14, message_id="abc123", source_addr="Herald"),
        frame(0x03, 0, 14, c("abc123") + "00 00" + c("Herald")),
    ),
    (
        "query_sm_resp",
        QuerySmResp(
            sequence_number=14,
            message_id="abc123",
            final_date="240101120000000+",
            message_state=2,
        ),
        frame(0x80000003, 0, 14, c("abc123") + c("240101120000000+") + "02 00"),
    ),
    (
        "cancel_sm",
        CancelSm(
            sequence_number=15,
            message_id="abc123",
            source_addr="Herald",
            destination_addr="4477",
        ),
        frame(0x08, 0, 15, "00" + c("abc123") + "00 00" + c("Herald") + "00 00" + c("4477")),
    ),
    ("cancel_sm_resp", CancelSmResp(sequence_number=15), frame(0x80000008, 0, 15)),
    (
        "replace_sm",
        ReplaceSm(
            sequence_number=16,
            message_id="abc123",
            source_addr="Herald",
            registered_delivery=1,
            short_message=b"New",
        ),
        frame(0x07, 0, 16, c("abc123") + "00 00" + c("Herald") + "00 00 01 00 03 4e6577"),
    ),
    ("replace_sm_resp", ReplaceSmResp(sequence_number=16), frame(0x80000007, 0, 16)),
    ("enquire_link", EnquireLink(sequence_number=17), frame(0x15, 0, 17)),
    ("enquire_link_resp", EnquireLinkResp(sequence_number=17), frame(0x80000015, 0, 17)),
    (
        "alert_notification",
        AlertNotification(
            sequence_number=18,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            esme_addr="Herald",
            tlvs={Tag.MS_AVAILABILITY_STATUS: 0},
        ),
        frame(
            0x102,
            0,
            18,
            "01 01" + c("447700900123") + "00 00" + c("Herald") + "0422 0001 00",
        ),
    ),
]


@pytest.mark.parametrize(("name", "pdu", "hexstr"), TABLE, ids=[row[0] for row in TABLE])
def test_encode_matches_table(name: str, pdu: object, hexstr: str) -> None:
    assert encode(pdu).hex() == hexstr


@pytest.mark.parametrize(("name", "pdu", "hexstr"), TABLE, ids=[row[0] for row in TABLE])
def test_decode_matches_table(name: str, pdu: object, hexstr: str) -> None:
    assert decode(bytes.fromhex(hexstr)) == pdu


def test_table_covers_every_command() -> None:
    covered = {type(row[1]).command_id for row in TABLE}
    assert covered == set(PDU_CLASSES) == set(BODIES)


def test_decoded_values_are_typed() -> None:
    pdu = decode(bytes.fromhex(TABLE[16][2]))
    assert isinstance(pdu, DeliverSm) and pdu.is_receipt
    assert pdu.command_status is S.ESME_ROK
    assert pdu.tlvs[Tag.NETWORK_ERROR_CODE].error_code == 0x0102
    assert list(pdu.tlvs) == [Tag.RECEIPTED_MESSAGE_ID, Tag.MESSAGE_STATE, Tag.NETWORK_ERROR_CODE]
    assert all(isinstance(k, Tag) for k in pdu.tlvs)


def test_unknown_tlvs_pass_through_unchanged() -> None:
    # Vendor tags in the 0x1400-0x3FFF range, and one beyond, in odd order.
    raw = frame(
        0x80000004,
        0,
        1,
        c("id1") + "1400 0003 010203" + "3fff 0000" + "0210 0001 34" + "ffff 0001 aa",
    )
    pdu = decode(bytes.fromhex(raw))
    assert pdu.tlvs == {
        0x1400: b"\x01\x02\x03",
        0x3FFF: b"",
        Tag.SC_INTERFACE_VERSION: 0x34,
        0xFFFF: b"\xaa",
    }
    assert encode(pdu).hex() == raw


def test_unknown_command_status_kept_as_int() -> None:
    pdu = decode(bytes.fromhex(frame(0x80000004, 0x0400, 3)))
    assert pdu.command_status == 0x400
    assert type(pdu.command_status) is int
    assert status_name(pdu.command_status) == "0x00000400"
    assert encode(pdu).hex() == frame(0x80000004, 0x0400, 3)


def test_error_response_with_a_body_anyway_is_accepted() -> None:
    # Some SMSCs send the body despite SMPP 3.4 §4.4.2; even a broken one is ignored.
    good = decode(bytes.fromhex(frame(0x80000004, 0x45, 3, c("x"))))
    assert good == SubmitSmResp(sequence_number=3, command_status=0x45, message_id="x")
    broken = decode(bytes.fromhex(frame(0x80000004, 0x45, 3, "41" * 70)))
    assert broken == SubmitSmResp(sequence_number=3, command_status=0x45)


def test_header_only_responses_take_defaults() -> None:
    assert decode(bytes.fromhex(frame(0x80000005, 0, 4))) == DeliverSmResp(sequence_number=4)
    assert decode(bytes.fromhex(frame(0x80000021, 0, 4))) == SubmitMultiResp(sequence_number=4)


def test_receipted_message_id_without_nul_is_accepted() -> None:
    raw = frame(0x05, 0, 1, "00" * 17 + "001e 0003 616263")
    assert decode(bytes.fromhex(raw)).tlvs[Tag.RECEIPTED_MESSAGE_ID] == "abc"


def test_make_response() -> None:
    resp = SUBMIT.make_response(message_id="m")
    assert resp == SubmitSmResp(sequence_number=7, message_id="m")
    with pytest.raises(ValueError):
        Outbind().make_response()
    with pytest.raises(ValueError):
        resp.make_response()


# --- decode errors -------------------------------------------------------------------

_SM_HEAD = "00 00 00" + c("src") + "00 00" + c("dst")


def _submit(body: str, seq: int = 5) -> bytes:
    return bytes.fromhex(frame(0x04, 0, seq, body))


BODY_ERRORS: list[tuple[str, bytes, int, str]] = [
    ("service_type too long", _submit(c("ABCDEFG") + "00"), S.ESME_RINVSERTYP, "service_type"),
    ("source_addr_ton missing", _submit("00"), S.ESME_RINVSRCTON, "source_addr_ton"),
    ("source_addr_npi missing", _submit("00 01"), S.ESME_RINVSRCNPI, "source_addr_npi"),
    ("source_addr over 20", _submit("00 00 00" + "31" * 21 + "00"), S.ESME_RINVSRCADR, "source_addr"),
    ("source_addr no NUL", _submit("00 00 00 3132"), S.ESME_RINVSRCADR, "source_addr"),
    ("dest_addr_ton missing", _submit("00 00 00" + c("s")), S.ESME_RINVDSTTON, "dest_addr_ton"),
    ("dest_addr_npi missing", _submit("00 00 00" + c("s") + "01"), S.ESME_RINVDSTNPI, "dest_addr_npi"),
    ("destination_addr over 20", _submit("00 00 00" + c("s") + "00 00" + "31" * 25), S.ESME_RINVDSTADR, "destination_addr"),
    ("esm_class missing", _submit(_SM_HEAD), S.ESME_RINVESMCLASS, "esm_class"),
    ("protocol_id missing", _submit(_SM_HEAD + "00"), S.ESME_RINVCMDLEN, "protocol_id"),
    ("priority_flag missing", _submit(_SM_HEAD + "00 00"), S.ESME_RINVPRTFLG, "priority_flag"),
    ("schedule 5 chars", _submit(_SM_HEAD + "00 00 00" + c("12345")), S.ESME_RINVSCHED, "schedule_delivery_time"),
    ("schedule missing", _submit(_SM_HEAD + "00 00 00"), S.ESME_RINVSCHED, "schedule_delivery_time"),
    ("validity 17 chars", _submit(_SM_HEAD + "00 00 00 00" + c("1" * 17)), S.ESME_RINVEXPIRY, "validity_period"),
    ("registered_delivery missing", _submit(_SM_HEAD + "00 00 00 00 00"), S.ESME_RINVREGDLVFLG, "registered_delivery"),
    ("replace_if_present missing", _submit(_SM_HEAD + "00 00 00 00 00 00"), S.ESME_RINVREPFLAG, "replace_if_present_flag"),
    ("data_coding missing", _submit(_SM_HEAD + "00 00 00 00 00 00 00"), S.ESME_RINVCMDLEN, "data_coding"),
    ("sm_default_msg_id missing", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00"), S.ESME_RINVDFTMSGID, "sm_default_msg_id"),
    ("sm_length missing", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00 00"), S.ESME_RINVMSGLEN, "short_message"),
    ("sm_length past end", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00 00 05 4142"), S.ESME_RINVMSGLEN, "short_message"),
    ("TLV header cut", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00 00 00 0424"), S.ESME_RINVOPTPARSTREAM, "tlvs"),
    ("TLV value past end", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00 00 00 0424 0010 41"), S.ESME_RINVOPTPARSTREAM, "tlvs"),
    ("known TLV wrong length", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00 00 00 020c 0001 01"), S.ESME_RINVPARLEN, "sar_msg_ref_num"),
    ("cstr TLV too long", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00 00 00 001e 0050" + "41" * 80), S.ESME_RINVPARLEN, "receipted_message_id"),
    ("octets TLV too short", _submit(_SM_HEAD + "00 00 00 00 00 00 00 00 00 00 0381 0001 41"), S.ESME_RINVPARLEN, "callback_num"),
    ("bind system_id too long", bytes.fromhex(frame(0x02, 0, 5, "41" * 16 + "00")), S.ESME_RINVSYSID, "system_id"),
    ("bind password too long", bytes.fromhex(frame(0x02, 0, 5, c("a") + "41" * 9 + "00")), S.ESME_RINVPASWD, "password"),
    ("bind system_type too long", bytes.fromhex(frame(0x02, 0, 5, c("a") + c("b") + "41" * 13 + "00")), S.ESME_RINVSYSTYP, "system_type"),
    ("bind interface_version missing", bytes.fromhex(frame(0x09, 0, 5, c("a") + c("b") + "00")), S.ESME_RBINDFAIL, "interface_version"),
    ("query_sm message_id too long", bytes.fromhex(frame(0x03, 0, 5, "41" * 65 + "00")), S.ESME_RINVMSGID, "message_id"),
    ("submit_multi 255 dests", bytes.fromhex(frame(0x21, 0, 5, "00 00 00 00 ff")), S.ESME_RINVNUMDESTS, "dest_addresses"),
    ("submit_multi dest_flag 3", bytes.fromhex(frame(0x21, 0, 5, "00 00 00 00 01 03")), S.ESME_RINVDESTFLAG, "dest_addresses"),
    ("submit_multi dest_flag missing", bytes.fromhex(frame(0x21, 0, 5, "00 00 00 00 01")), S.ESME_RINVDESTFLAG, "dest_addresses"),
    ("submit_multi SME address too long", bytes.fromhex(frame(0x21, 0, 5, "00 00 00 00 01 01 01 01" + "31" * 22)), S.ESME_RINVDSTADR, "dest_addresses"),
    ("submit_multi dl_name too long", bytes.fromhex(frame(0x21, 0, 5, "00 00 00 00 01 02" + "41" * 21 + "00")), S.ESME_RINVDLNAME, "dest_addresses"),
    ("data_sm source_addr over 64", bytes.fromhex(frame(0x103, 0, 5, "00 00 00" + "31" * 65 + "00")), S.ESME_RINVSRCADR, "source_addr"),
    ("cancel_sm destination missing", bytes.fromhex(frame(0x08, 0, 5, "00" + c("id") + "00 00" + c("s") + "00 00")), S.ESME_RINVDSTADR, "destination_addr"),
    ("replace_sm sm_length past end", bytes.fromhex(frame(0x07, 0, 5, c("id") + "00 00" + c("s") + "00 00 00 00 09")), S.ESME_RINVMSGLEN, "short_message"),
    ("alert_notification esme_addr missing", bytes.fromhex(frame(0x102, 0, 5, "00 00" + c("s") + "00 00")), S.ESME_RINVDSTADR, "esme_addr"),
    ("request with header only", bytes.fromhex(frame(0x04, 0, 5)), S.ESME_RINVSERTYP, "service_type"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "raw", "status", "field"), BODY_ERRORS, ids=[row[0] for row in BODY_ERRORS]
)
def test_body_errors_carry_the_field_status(name: str, raw: bytes, status: int, field: str) -> None:
    with pytest.raises(BodyError) as info:
        decode(raw)
    err = info.value
    assert err.status == status
    assert err.field == field
    assert err.sequence_number == 5
    assert err.command_id == struct.unpack(">I", raw[4:8])[0]
    assert not err.fatal


def test_unknown_command_id() -> None:
    with pytest.raises(UnknownCommandError) as info:
        decode(bytes.fromhex(frame(0x00000099, 0, 42, "0102")))
    assert info.value.status == S.ESME_RINVCMDID
    assert info.value.sequence_number == 42
    assert not info.value.fatal


def test_length_mismatch_is_framing() -> None:
    raw = bytes.fromhex(frame(0x15, 0, 9)) + b"\x00"
    with pytest.raises(FramingError) as info:
        decode(raw)
    assert info.value.status == S.ESME_RINVCMDLEN and info.value.fatal
    with pytest.raises(FramingError):
        decode(b"\x00\x00\x00\x10")


# --- framing ------------------------------------------------------------------------------


def test_frame_reader_splits_and_joins() -> None:
    stream = b"".join(bytes.fromhex(row[2]) for row in TABLE)
    expected = [bytes.fromhex(row[2]) for row in TABLE]
    for chunk in (1, 3, 16, 17, 100, len(stream)):
        reader = FrameReader()
        got: list[bytes] = []
        for i in range(0, len(stream), chunk):
            got += reader.feed(stream[i : i + chunk])
        assert got == expected
        assert reader.buffered == 0 and reader.error is None


def test_frame_reader_checks_length_before_buffering() -> None:
    reader = FrameReader(max_length=1024)
    assert reader.feed(b"\x00\x00") == []
    # The four length octets alone are enough to refuse: nothing of the body is held.
    assert reader.feed(b"\x10\x00") == []
    err = reader.error
    assert isinstance(err, FramingError) and err.status == S.ESME_RINVCMDLEN
    assert reader.buffered == 0
    assert reader.feed(b"\x00" * 100) == []


def test_frame_reader_too_short_keeps_earlier_frames() -> None:
    good = bytes.fromhex(frame(0x15, 0, 1))
    bad = struct.pack(">IIII", 8, 0x15, 0, 77)
    reader = FrameReader()
    assert reader.feed(good + bad) == [good]
    assert reader.error is not None
    assert reader.error.sequence_number == 77
    assert reader.error.command_id == 0x15


# --- encode errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pdu",
    [
        SubmitSm(destination_addr="1" * 21),
        SubmitSm(short_message=b"x" * 255),
        SubmitSm(esm_class=256),
        SubmitSm(sequence_number=-1),
        SubmitSm(source_addr="Ωmega"),
        SubmitSm(validity_period="1h"),
        SubmitSm(tlvs={Tag.SAR_MSG_REF_NUM: 70000}),
        SubmitSm(tlvs={0x1400: "not bytes"}),
        SubmitSm(tlvs={Tag.RECEIPTED_MESSAGE_ID: "x" * 65}),
        SubmitSm(tlvs={Tag.CALLBACK_NUM: b"12"}),
        SubmitMulti(dest_addresses=["4477"]),
        SubmitMulti(dest_addresses=[SmeAddress(1, 1, "1")] * 255),
        BindTransmitter(password="1234567890"),
    ],
)
def test_encode_rejects_values_that_do_not_fit(pdu: object) -> None:
    with pytest.raises(EncodeError):
        encode(pdu)


def test_raw_bytes_accepted_for_known_tlv() -> None:
    pdu = SubmitSm(tlvs={Tag.SAR_MSG_REF_NUM: b"\x00\x07"})
    assert decode(encode(pdu)).tlvs == {Tag.SAR_MSG_REF_NUM: 7}


# --- property tests ----------------------------------------------------------------------

_LATIN1 = st.characters(min_codepoint=1, max_codepoint=255)
_TIME = st.one_of(
    st.just(""),
    st.builds(
        lambda d, s: d + s,
        st.text(alphabet="0123456789", min_size=15, max_size=15),
        st.sampled_from("+-R"),
    ),
)


def _cstr_strategy(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_LATIN1, max_size=size - 1)


def _field_strategy(f) -> st.SearchStrategy:
    if f.kind == "u8":
        return st.integers(0, 0xFF)
    if f.kind == "cstr":
        return _cstr_strategy(f.size)
    if f.kind == "time":
        return _TIME
    if f.kind == "sm":
        return st.binary(max_size=254)
    if f.kind == "dests":
        return st.lists(
            st.one_of(
                st.builds(SmeAddress, st.integers(0, 255), st.integers(0, 255), _cstr_strategy(21)),
                st.builds(DistributionList, _cstr_strategy(21)),
            ),
            max_size=5,
        )
    assert f.kind == "unsuccess"
    return st.lists(
        st.builds(
            UnsuccessSme,
            st.integers(0, 255),
            st.integers(0, 255),
            _cstr_strategy(21),
            st.integers(0, 0xFFFFFFFF),
        ),
        max_size=5,
    )


def _tlv_value_strategy(spec) -> st.SearchStrategy:
    if spec.kind == "u8":
        return st.integers(0, 0xFF)
    if spec.kind == "u16":
        return st.integers(0, 0xFFFF)
    if spec.kind == "u32":
        return st.integers(0, 0xFFFFFFFF)
    if spec.kind == "nec":
        return st.builds(NetworkErrorCode, st.integers(0, 255), st.integers(0, 0xFFFF))
    if spec.kind == "cstr":
        return _cstr_strategy(spec.max_len)
    return st.binary(min_size=spec.min_len, max_size=min(spec.max_len, 300))


_KNOWN_TLV = st.sampled_from(sorted(TLVS)).flatmap(
    lambda tag: st.tuples(st.just(TLVS[tag].tag), _tlv_value_strategy(TLVS[tag]))
)
_UNKNOWN_TLV = st.tuples(
    st.integers(0, 0xFFFF).filter(lambda t: t not in TLVS), st.binary(max_size=40)
)
_TLVS = st.lists(st.one_of(_KNOWN_TLV, _UNKNOWN_TLV), max_size=6).map(dict)


@st.composite
def any_pdu(draw: st.DrawFn) -> object:
    command_id = draw(st.sampled_from(sorted(PDU_CLASSES)))
    cls = PDU_CLASSES[command_id]
    values = {f.name: draw(_field_strategy(f)) for f in BODIES[command_id]}
    status = 0 if command_id in NO_BODY_ON_ERROR else draw(st.integers(0, 0xFFFFFFFF))
    return cls(
        sequence_number=draw(st.integers(0, 0xFFFFFFFF)),
        command_status=status,
        tlvs=draw(_TLVS),
        **values,
    )


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(any_pdu())
def test_round_trip(pdu: object) -> None:
    raw = encode(pdu)
    assert decode(raw) == pdu
    assert encode(decode(raw)) == raw


@settings(max_examples=300)
@given(st.binary(min_size=16, max_size=300), st.sampled_from(sorted(PDU_CLASSES)))
def test_random_bodies_raise_only_decode_errors(body: bytes, command_id: int) -> None:
    raw = struct.pack(">IIII", 16 + len(body), command_id, 0, 1) + body
    try:
        pdu = decode(raw)
    except DecodeError as err:
        assert err.status in CommandStatus.__members__.values()
        assert err.sequence_number == 1
    else:
        assert pdu.command_id == command_id


@settings(max_examples=200)
@given(any_pdu(), st.data())
def test_every_truncation_is_a_decode_error(pdu: object, data: st.DataObject) -> None:
    raw = encode(pdu)
    if len(raw) <= 16:
        return
    cut = data.draw(st.integers(16, len(raw) - 1))
    short = struct.pack(">I", cut) + raw[4:cut]
    try:
        decode(short)
    except DecodeError:
        pass


def test_command_ids_are_all_34() -> None:
    assert len(CommandId) == 27
    assert CommandId.SUBMIT_SM_RESP.is_response and not CommandId.SUBMIT_SM.is_response


def _faulty_field_strategy(f) -> st.SearchStrategy:
    """A field's valid values, and the faults an encoder must refuse."""
    if f.kind == "u8":
        return st.one_of(st.integers(0, 0xFF), st.sampled_from([-1, 256, None, "1"]))
    if f.kind in ("cstr", "time"):
        size = f.size
        return st.one_of(
            _field_strategy(f),
            st.text(max_size=size + 2),  # too long, NULs, beyond Latin-1
            st.binary(max_size=size - 1),  # bytes are accepted too
            st.sampled_from([None, 7]),
        )
    if f.kind == "sm":
        return st.one_of(st.binary(max_size=260), st.sampled_from(["text", None]))
    return _field_strategy(f)


@st.composite
def straight_pdu(draw: st.DrawFn, faulty: bool) -> object:
    layouts = sorted((cid for cid, lay in _LAYOUTS.items() if lay.fast is not None))
    command_id = draw(st.sampled_from(layouts))
    strategy = _faulty_field_strategy if faulty else _field_strategy
    values = {f.name: draw(strategy(f)) for f in BODIES[command_id]}
    return PDU_CLASSES[command_id](sequence_number=1, **values)


def _general_body(pdu: object) -> bytes | None:
    parts: list[bytes] = []
    try:
        _encode_body(_LAYOUT_BY_CLASS[type(pdu)], pdu, parts)
    except (EncodeError, TypeError, ValueError):
        return None
    return b"".join(parts)


@settings(max_examples=500)
@given(straight_pdu(faulty=False))
def test_straight_encoders_write_what_the_general_one_writes(pdu: object) -> None:
    assert _LAYOUT_BY_CLASS[type(pdu)].fast(pdu) == _general_body(pdu)


@settings(max_examples=800)
@given(straight_pdu(faulty=True))
def test_straight_encoders_refuse_what_the_general_one_refuses(pdu: object) -> None:
    general = _general_body(pdu)
    try:
        fast = _LAYOUT_BY_CLASS[type(pdu)].fast(pdu)
    except Exception:
        fast = None  # encode() then asks the general encoder
    assert fast is None or fast == general
    if general is None:
        with pytest.raises((EncodeError, TypeError, ValueError)):
            encode(pdu)
    else:
        assert encode(pdu)[16:16 + len(general)] == general
