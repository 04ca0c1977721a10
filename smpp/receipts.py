"""Delivery receipts: the receipt text, message states, network error types, message ids.

The receipt text is the one SMPP 3.4 Appendix B suggests and SMSCs vary freely::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...

:func:`parse_receipt` accepts keys in any case, ``submit_date``/``submitdate``/``submit-date``
spellings, spaces around values, missing fields, dates of 10 (YYMMDDhhmm), 12 (YYMMDDhhmmss)
or 14 (YYYYMMDDhhmmss) digits, and a ``text`` field holding colons or key-like words (it is
always read to the end). The ``stat`` word and the ``message_state`` TLV (SMPP 3.4 §5.2.28)
map to one enum, :class:`smpp.pdu.MessageState`.

Matching message ids
--------------------
The id an SMSC returns in ``submit_sm_resp`` and the one it quotes in the receipt often
differ in form: case, leading zeros, surrounding blanks or NULs, and some SMSCs answer in
hexadecimal and report in decimal (or the other way round). The rule used here:

1. :func:`normalise_message_id` strips whitespace and NULs and lowercases; when what is
   left is all hexadecimal digits, leading zeros go too (``"0"`` stays). Equal normal
   forms are the same message.
2. :func:`message_id_keys` gives the set of keys an id may match under. An id made only
   of hex digits is a number: it yields ``"#<value>"`` (the value in decimal) for its
   hexadecimal reading and, when it is also all decimal digits, for its decimal reading.
   Any other id yields ``"=<normal form>"`` alone. Ids longer than 64 characters are never
   read as numbers; an empty id has no keys and matches nothing.
3. Two ids match when their key sets intersect (:func:`message_ids_match`).

The ambiguous case is an id of decimal digits only, say ``"10"``: it is read both as ten
and as sixteen, so it matches ``"10"``, ``"010"``, ``"0A"`` (hex ten) and ``"16"``
(decimal sixteen, as an SMSC that answered ``"10"`` in hex would report it). With many
messages in flight more than one may then match a receipt; prefer the candidate whose
normal form is equal, then the one sent most recently. Where a vendor's convention is
known, :func:`message_id_key` gives one exact key per id instead.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from smpp.pdu import MessageState

# SMPP 3.4 Appendix B: the word a receipt's ``stat`` field carries for each state.
_STAT_WORDS = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}

_STAT_ALIASES: dict[str, MessageState] = {word: state for state, word in _STAT_WORDS.items()}
_STAT_ALIASES.update(
    {
        # Spellings seen from SMSCs besides the seven-letter words.
        "EN_ROUTE": MessageState.ENROUTE,
        "DELIVERED": MessageState.DELIVERED,
        "DELIVER": MessageState.DELIVERED,
        "EXPIRD": MessageState.EXPIRED,
        "DELETD": MessageState.DELETED,
        "UNDELIVERABLE": MessageState.UNDELIVERABLE,
        "UNDELIVERED": MessageState.UNDELIVERABLE,
        "UNDELIVRD": MessageState.UNDELIVERABLE,
        "FAILED": MessageState.UNDELIVERABLE,
        "ACCEPTED": MessageState.ACCEPTED,
        "REJECTED": MessageState.REJECTED,
    }
)


def state_from_stat(word: str | None) -> MessageState:
    """The state a receipt's ``stat`` word names, in any case; unrecognised or missing
    is UNKNOWN."""
    if not word:
        return MessageState.UNKNOWN
    return _STAT_ALIASES.get(word.strip().upper(), MessageState.UNKNOWN)


def state_from_tlv(value: int | bytes) -> MessageState:
    """The state a ``message_state`` TLV value (SMPP 3.4 §5.2.28) names, given as an int
    or as its one octet. A value SMPP 3.4 does not assign (SMPP 5.0's SCHEDULED 0 and
    SKIPPED 9 among them) is UNKNOWN."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 1:
            return MessageState.UNKNOWN
        value = value[0]
    try:
        return MessageState(value)
    except ValueError:
        return MessageState.UNKNOWN


def stat_word(state: MessageState) -> str:
    """The seven-letter ``stat`` word for ``state`` (SMPP 3.4 Appendix B)."""
    return _STAT_WORDS[MessageState(state)]


def is_final(state: MessageState) -> bool:
    """True unless the message is still on its way (ENROUTE).

    SMPP counts ACCEPTED as final; some carriers send ACCEPTD as an interim state, and
    treating it so is the gateway's decision.
    """
    return state != MessageState.ENROUTE


class NetworkType(enum.IntEnum):
    """First octet of the ``network_error_code`` TLV (SMPP 3.4 §5.3.2.31). The codec
    reads the TLV into :class:`smpp.pdu.NetworkErrorCode`; these name its type."""

    ANSI_136_ACCESS_DENIED = 1
    IS_95_ACCESS_DENIED = 2
    GSM = 3
    ANSI_136_CAUSE = 4
    IS_95_CAUSE = 5
    ANSI_41 = 6
    SMPP = 7
    MESSAGE_CENTER = 8


# --- receipt text ---------------------------------------------------------------------------

# One alternative per field; the group name is the field. A key must not follow a letter
# (so "sub" is not found inside "msub") and must be followed by a colon.
_KEY_RE = re.compile(
    r"(?<![a-z0-9_])(?:"
    r"(?P<id>id)|(?P<sub>sub)|(?P<dlvrd>dlvrd?)"
    r"|(?P<submit_date>submit[ \t]*[_-]?[ \t]*date)|(?P<done_date>done[ \t]*[_-]?[ \t]*date)"
    r"|(?P<stat>stat(?:us)?)|(?P<err>err(?:or)?)|(?P<text>text)"
    r")[ \t]*:",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """A parsed receipt. ``fields`` keeps every raw value found, by field name (``id``,
    ``sub``, ``dlvrd``, ``submit_date``, ``done_date``, ``stat``, ``err``, ``text``)."""

    message_id: str | None
    state: MessageState
    submitted: int | None = None
    delivered: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    error: str | None = None
    text: str | None = None
    fields: tuple[tuple[str, str], ...] = ()


def parse_receipt_date(value: str | None) -> datetime | None:
    """A receipt date (YYMMDDhhmm, YYMMDDhhmmss or YYYYMMDDhhmmss; spaces ignored) as a
    naive datetime, or None when it is not one.

    Receipts carry no time zone; the result is the SMSC's wall-clock time.
    """
    if not value:
        return None
    digits = "".join(value.split())
    if len(digits) not in (10, 12, 14) or not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) == 14:
        year, rest = int(digits[:4]), digits[4:]
    else:
        # Two-digit years are this century: an SMSC does not report 1999.
        year, rest = 2000 + int(digits[:2]), digits[2:]
    fields = [int(rest[i : i + 2]) for i in range(0, len(rest), 2)]
    try:
        return datetime(year, *fields)
    except ValueError:
        return None


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def parse_receipt(receipt: str | bytes) -> DeliveryReceipt | None:
    """Read a receipt text; None when it has neither an ``id`` nor a ``stat`` field.

    Bytes are read as Latin-1, which keeps the ASCII keys whatever the alphabet; decode
    with the ``data_coding`` first when the ``text`` field matters.
    """
    if isinstance(receipt, bytes | bytearray):
        receipt = bytes(receipt).decode("latin-1")
    receipt = receipt.replace("\x00", "")
    matches = []
    for match in _KEY_RE.finditer(receipt):
        matches.append(match)
        if match.lastgroup == "text":
            break  # the text runs to the end, whatever it contains
    fields: dict[str, str] = {}
    for i, match in enumerate(matches):
        name = match.lastgroup
        assert name is not None
        end = matches[i + 1].start() if i + 1 < len(matches) else len(receipt)
        fields.setdefault(name, receipt[match.end() : end].strip())
    if "id" not in fields and "stat" not in fields:
        return None
    return DeliveryReceipt(
        message_id=fields.get("id") or None,
        state=state_from_stat(fields.get("stat")),
        submitted=_int_or_none(fields.get("sub")),
        delivered=_int_or_none(fields.get("dlvrd")),
        submit_date=parse_receipt_date(fields.get("submit_date")),
        done_date=parse_receipt_date(fields.get("done_date")),
        error=fields.get("err") or None,
        text=fields.get("text"),
        fields=tuple(fields.items()),
    )


# The Appendix B layout as most SMSCs write it, keys lowercase and single-spaced: read with
# one anchored match. Anything else goes through parse_receipt's general reading.
_COMMON_RE = re.compile(
    r"id:(?P<id>[^ \x00]*) sub:[0-9]* dlvrd:[0-9]* submit date:[0-9]* done date:[0-9]*"
    r" stat:(?P<stat>[A-Za-z]*) err:(?P<err>[^ \x00]*)(?: text:|$)"
)


def receipt_status(receipt: str | bytes) -> tuple[str | None, MessageState, str | None] | None:
    """(message id, state, error) of a receipt text: what a gateway needs to settle it.

    The same answer as :func:`parse_receipt` (None when it finds neither ``id`` nor
    ``stat``), several times faster on receipts in the common layout.
    """
    if isinstance(receipt, bytes | bytearray):
        receipt = bytes(receipt).decode("latin-1")
    match = _COMMON_RE.match(receipt)
    if match is None:
        parsed = parse_receipt(receipt)
        return None if parsed is None else (parsed.message_id, parsed.state, parsed.error)
    return (match["id"] or None, state_from_stat(match["stat"]), match["err"] or None)


def build_receipt(
    message_id: str,
    state: MessageState,
    *,
    submit_date: datetime,
    done_date: datetime,
    submitted: int = 1,
    delivered: int | None = None,
    error: int | str = 0,
    text: str = "",
    seconds: bool = False,
) -> str:
    """The receipt text of SMPP 3.4 Appendix B.

    ``delivered`` defaults to ``submitted`` for a DELIVERED state and 0 otherwise. An int
    ``error`` is written as three decimal digits. ``text`` is cut to its first 20
    characters, as the appendix suggests. Dates are written as given (no zone conversion),
    to the minute, or to the second with ``seconds``.
    """
    if delivered is None:
        delivered = submitted if state == MessageState.DELIVERED else 0
    date_format = "%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"
    err = f"{error:03d}" if isinstance(error, int) else error
    return (
        f"id:{message_id} sub:{submitted:03d} dlvrd:{delivered:03d}"
        f" submit date:{submit_date.strftime(date_format)}"
        f" done date:{done_date.strftime(date_format)}"
        f" stat:{stat_word(state)} err:{err} text:{text[:20]}"
    )


# --- message ids ----------------------------------------------------------------------------

_HEX_DIGITS = frozenset("0123456789abcdef")
_MAX_NUMERIC_ID = 64


class IdFormat(enum.StrEnum):
    """How a vendor writes its message ids, where that is known."""

    TEXT = "text"
    DECIMAL = "decimal"
    HEX = "hex"


def normalise_message_id(message_id: str) -> str:
    """Canonical text of a message id: stripped of whitespace and NULs, lowercased, and
    without leading zeros when all hex digits (``"0"`` stays ``"0"``)."""
    text = message_id.strip().strip("\x00").strip().lower()
    if text and set(text) <= _HEX_DIGITS:
        text = text.lstrip("0") or "0"
    return text


def message_id_keys(message_id: str) -> frozenset[str]:
    """Keys under which ``message_id`` matches another id (see the module docstring).

    ``"#<n>"`` for each numeric reading, ``"=<normal form>"`` for an id that is not a
    number, nothing for an empty id. Remembered for recent ids: one id is keyed when
    its ``submit_sm_resp`` is recorded and again when its receipt comes back.
    """
    keys = _KEYS_SEEN.get(message_id)
    if keys is None:
        keys = compute_message_id_keys(message_id)
        if len(_KEYS_SEEN) >= _KEYS_KEPT:
            _KEYS_SEEN.clear()  # cheaper than LRU bookkeeping on every call
        _KEYS_SEEN[message_id] = keys
    return keys


_KEYS_KEPT = 16_384
_KEYS_SEEN: dict[str, frozenset[str]] = {}


def compute_message_id_keys(message_id: str) -> frozenset[str]:
    """:func:`message_id_keys` computed, never remembered."""
    text = normalise_message_id(message_id)
    if not text:
        return frozenset()
    if len(text) > _MAX_NUMERIC_ID or not set(text) <= _HEX_DIGITS:
        return frozenset({f"={text}"})
    keys = {f"#{int(text, 16)}"}
    if text.isdigit():
        keys.add(f"#{int(text, 10)}")
    return frozenset(keys)


def message_ids_match(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` may name the same message (their key sets intersect)."""
    return not message_id_keys(a).isdisjoint(message_id_keys(b))


def message_id_key(message_id: str, id_format: IdFormat | str) -> str:
    """One exact key for ``message_id`` written in a known format.

    Store ``message_id_key(resp_id, vendor_submit_format)`` and look up
    ``message_id_key(receipt_id, vendor_receipt_format)``: a vendor that answers in hex
    and reports in decimal then matches exactly. Raises :class:`ValueError` when the id is
    not a number in the format named.
    """
    id_format = IdFormat(id_format)
    text = normalise_message_id(message_id)
    if id_format is IdFormat.TEXT:
        return f"={text}"
    base = 16 if id_format is IdFormat.HEX else 10
    allowed = _HEX_DIGITS if base == 16 else frozenset("0123456789")
    if not text or not set(text) <= allowed:
        raise ValueError(f"message id {message_id!r} is not a {id_format} number")
    return f"#{int(text, base)}"
