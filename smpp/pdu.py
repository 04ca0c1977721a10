"""SMPP 3.4 PDUs as plain dataclasses, and the protocol's enumerations.

Every PDU carries its header values (``sequence_number``, ``command_status``),
its mandatory body fields under their SMPP 3.4 names, and ``tlvs``: a dict
from tag to value holding the optional parameters in arrival order. Known
tags (:class:`Tag`) hold typed values (``int``, ``str``, ``bytes`` or
:class:`NetworkErrorCode`); unknown tags hold their raw value octets and are
written back unchanged.

C-Octet Strings are ``str`` (decoded as Latin-1, so every byte survives a
round trip); ``short_message`` and other octet strings are ``bytes``. Integer
fields are plain ``int``; the enums below give names to their values.

The wire format lives in :mod:`smpp.codec`; this module has no I/O and no
codec logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "PDU_CLASSES",
    "RESPONSE_CLASS",
    "AlertNotification",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CancelSm",
    "CancelSmResp",
    "CommandId",
    "CommandStatus",
    "DataCoding",
    "DataSm",
    "DataSmResp",
    "DeliverSm",
    "DeliverSmResp",
    "DestFlag",
    "DistributionList",
    "EnquireLink",
    "EnquireLinkResp",
    "EsmClass",
    "GenericNack",
    "MessageState",
    "NetworkErrorCode",
    "Npi",
    "Outbind",
    "Pdu",
    "QuerySm",
    "QuerySmResp",
    "RegisteredDelivery",
    "ReplaceSm",
    "ReplaceSmResp",
    "SmeAddress",
    "SubmitMulti",
    "SubmitMultiResp",
    "SubmitSm",
    "SubmitSmResp",
    "Tag",
    "Ton",
    "Unbind",
    "UnbindResp",
    "UnsuccessSme",
    "status_name",
]

INTERFACE_VERSION = 0x34
"""``interface_version`` / ``sc_interface_version`` value for SMPP 3.4 (§5.2.4)."""


class CommandId(IntEnum):
    """SMPP 3.4 §5.1.2.1. Responses are the request id with bit 31 set."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def is_response(self) -> bool:
        return bool(self & 0x80000000)


class CommandStatus(IntEnum):
    """Every ``command_status`` value defined by SMPP 3.4 §5.1.3.

    Values a peer sends that are not listed here stay plain ``int`` on
    decoded PDUs (never an exception).
    """

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED`` for a known status, ``0x00000400`` for any other."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


_COMMAND_NAMES = {int(c): c.name.lower() for c in CommandId}


def command_name(command_id: int) -> str:
    """``submit_sm`` for a known command id, ``0x00000400`` for any other (a dict
    lookup: cheap enough to name a task per PDU)."""
    return _COMMAND_NAMES.get(command_id) or f"0x{command_id:08X}"


class Ton(IntEnum):
    """Type of Number, SMPP 3.4 §5.2.5."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    """Numbering Plan Indicator, SMPP 3.4 §5.2.6."""

    UNKNOWN = 0
    ISDN = 1
    DATA = 3
    TELEX = 4
    LAND_MOBILE = 6
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14
    WAP_CLIENT_ID = 18


class EsmClass:
    """Bits of ``esm_class``, SMPP 3.4 §5.2.12 (constants, combine with ``|``)."""

    MODE_MASK = 0x03
    MODE_DEFAULT = 0x00
    MODE_DATAGRAM = 0x01
    MODE_FORWARD = 0x02
    MODE_STORE_AND_FORWARD = 0x03
    TYPE_MASK = 0x3C
    TYPE_DEFAULT = 0x00
    TYPE_DELIVERY_RECEIPT = 0x04
    TYPE_DELIVERY_ACK = 0x08
    TYPE_USER_ACK = 0x10
    TYPE_CONVERSATION_ABORT = 0x18
    TYPE_INTERMEDIATE_NOTIFICATION = 0x20
    UDHI = 0x40
    REPLY_PATH = 0x80

    @staticmethod
    def is_receipt(esm_class: int) -> bool:
        """True for an SMSC delivery receipt or intermediate notification."""
        kind = esm_class & EsmClass.TYPE_MASK
        return kind in (EsmClass.TYPE_DELIVERY_RECEIPT, EsmClass.TYPE_INTERMEDIATE_NOTIFICATION)


class RegisteredDelivery:
    """Bits of ``registered_delivery``, SMPP 3.4 §5.2.17."""

    RECEIPT_MASK = 0x03
    NO_RECEIPT = 0x00
    RECEIPT_ALWAYS = 0x01
    RECEIPT_ON_FAILURE = 0x02
    SME_ACK_MASK = 0x0C
    INTERMEDIATE_NOTIFICATION = 0x10


class DataCoding(IntEnum):
    """Common ``data_coding`` values, SMPP 3.4 §5.2.19."""

    SMSC_DEFAULT = 0x00
    IA5 = 0x01
    OCTET_UNSPECIFIED = 0x02
    LATIN_1 = 0x03
    OCTET_UNSPECIFIED_8BIT = 0x04
    JIS = 0x05
    CYRILLIC = 0x06
    LATIN_HEBREW = 0x07
    UCS2 = 0x08
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A
    EXTENDED_KANJI = 0x0D
    KS_C_5601 = 0x0E


class MessageState(IntEnum):
    """``message_state``, SMPP 3.4 §5.2.28."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class DestFlag(IntEnum):
    """``dest_flag`` of a ``submit_multi`` destination, SMPP 3.4 §4.5.1.1."""

    SME_ADDRESS = 1
    DISTRIBUTION_LIST = 2


class Tag(IntEnum):
    """Optional parameter (TLV) tags of SMPP 3.4 §5.3.2."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class NetworkErrorCode(NamedTuple):
    """Value of the ``network_error_code`` TLV (SMPP 3.4 §5.3.2.31)."""

    network_type: int
    """1 = ANSI-136, 2 = IS-95, 3 = GSM, 4 = reserved."""
    error_code: int


# --- submit_multi parts ------------------------------------------------------


@dataclass(slots=True, frozen=True)
class SmeAddress:
    """A ``submit_multi`` destination that is one SME address (dest_flag 1)."""

    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(slots=True, frozen=True)
class DistributionList:
    """A ``submit_multi`` destination naming a distribution list (dest_flag 2)."""

    dl_name: str = ""


@dataclass(slots=True, frozen=True)
class UnsuccessSme:
    """One failed destination in a ``submit_multi_resp`` (SMPP 3.4 §4.5.2)."""

    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    error_status_code: int = 0


# --- PDUs ----------------------------------------------------------------------


@dataclass(slots=True)
class Pdu:
    """Header values and optional parameters common to every PDU.

    Subclasses set ``command_id`` and add their mandatory fields. Build them
    with keyword arguments; the positional order is an implementation detail
    of the codec.
    """

    command_id: ClassVar[CommandId]
    sequence_number: int = 0
    command_status: int = 0
    tlvs: dict[int, Any] = field(default_factory=dict)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & 0x80000000)

    def make_response(self, command_status: int = CommandStatus.ESME_ROK, **fields: Any) -> Pdu:
        """The response to this request, with the same ``sequence_number``.

        Raises ``ValueError`` for PDUs that take no response (responses,
        ``outbind``, ``alert_notification``).
        """
        try:
            cls = RESPONSE_CLASS[self.command_id]
        except KeyError:
            raise ValueError(f"{type(self).__name__} takes no response") from None
        return cls(sequence_number=self.sequence_number, command_status=command_status, **fields)


@dataclass(slots=True)
class _Bind(Pdu):
    """Body of the three bind requests (SMPP 3.4 §4.1.1, §4.1.3, §4.1.5)."""

    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(slots=True)
class _BindResp(Pdu):
    """Body of the three bind responses; ``sc_interface_version`` is a TLV."""

    system_id: str = ""


@dataclass(slots=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER


@dataclass(slots=True)
class BindTransmitterResp(_BindResp):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(slots=True)
class BindReceiver(_Bind):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER


@dataclass(slots=True)
class BindReceiverResp(_BindResp):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER_RESP


@dataclass(slots=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER


@dataclass(slots=True)
class BindTransceiverResp(_BindResp):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(slots=True)
class Outbind(Pdu):
    """SMSC asks the ESME to bind (SMPP 3.4 §4.1.7); takes no response."""

    command_id: ClassVar[CommandId] = CommandId.OUTBIND
    system_id: str = ""
    password: str = ""


@dataclass(slots=True)
class Unbind(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND


@dataclass(slots=True)
class UnbindResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND_RESP


@dataclass(slots=True)
class GenericNack(Pdu):
    """Answer to a PDU whose header was unusable (SMPP 3.4 §4.3)."""

    command_id: ClassVar[CommandId] = CommandId.GENERIC_NACK


@dataclass(slots=True)
class _ShortMessage(Pdu):
    """Body shared by ``submit_sm`` (§4.4.1) and ``deliver_sm`` (§4.6.1)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True)
class SubmitSm(_ShortMessage):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM


@dataclass(slots=True)
class SubmitSmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM_RESP
    message_id: str = ""


@dataclass(slots=True)
class DeliverSm(_ShortMessage):
    """Mobile-originated message or delivery receipt from the SMSC (§4.6.1)."""

    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM

    @property
    def is_receipt(self) -> bool:
        """True when ``esm_class`` marks a delivery receipt or notification."""
        return EsmClass.is_receipt(self.esm_class)


@dataclass(slots=True)
class DeliverSmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM_RESP
    message_id: str = ""


@dataclass(slots=True)
class SubmitMulti(Pdu):
    """One message to up to 254 destinations (SMPP 3.4 §4.5.1)."""

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_MULTI
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addresses: list[SmeAddress | DistributionList] = field(default_factory=list)
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True)
class SubmitMultiResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_MULTI_RESP
    message_id: str = ""
    unsuccess_smes: list[UnsuccessSme] = field(default_factory=list)


@dataclass(slots=True)
class DataSm(Pdu):
    """Message transfer with all content in TLVs (SMPP 3.4 §4.7.1)."""

    command_id: ClassVar[CommandId] = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0

    @property
    def is_receipt(self) -> bool:
        return EsmClass.is_receipt(self.esm_class)


@dataclass(slots=True)
class DataSmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.DATA_SM_RESP
    message_id: str = ""


@dataclass(slots=True)
class QuerySm(Pdu):
    command_id: ClassVar[CommandId] = CommandId.QUERY_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(slots=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.QUERY_SM_RESP
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(slots=True)
class CancelSm(Pdu):
    command_id: ClassVar[CommandId] = CommandId.CANCEL_SM
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(slots=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.CANCEL_SM_RESP


@dataclass(slots=True)
class ReplaceSm(Pdu):
    command_id: ClassVar[CommandId] = CommandId.REPLACE_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.REPLACE_SM_RESP


@dataclass(slots=True)
class EnquireLink(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK


@dataclass(slots=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK_RESP


@dataclass(slots=True)
class AlertNotification(Pdu):
    """SMSC tells the ESME a subscriber became available (§4.12.1); no response."""

    command_id: ClassVar[CommandId] = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        BindTransmitter, BindTransmitterResp, BindReceiver, BindReceiverResp,
        BindTransceiver, BindTransceiverResp, Outbind, Unbind, UnbindResp,
        GenericNack, SubmitSm, SubmitSmResp, DeliverSm, DeliverSmResp,
        SubmitMulti, SubmitMultiResp, DataSm, DataSmResp, QuerySm, QuerySmResp,
        CancelSm, CancelSmResp, ReplaceSm, ReplaceSmResp, EnquireLink,
        EnquireLinkResp, AlertNotification,
    )
}  # fmt: skip
"""Every SMPP 3.4 command id and the class that holds it."""

RESPONSE_CLASS: dict[int, type[Pdu]] = {
    cid & 0x7FFFFFFF: cls
    for cid, cls in PDU_CLASSES.items()
    if cid & 0x80000000 and cid != CommandId.GENERIC_NACK
}
"""Request command id → response class, for requests that take one."""
