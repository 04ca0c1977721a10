"""Text alphabets of SMPP short messages: GSM 03.38, Latin-1, UCS-2, and ``data_coding``.

Pure functions, no I/O. Three representations of GSM 7-bit text appear here:

* *septets*: GSM code points, one per octet, with an extension character written as
  ESC (0x1B) followed by its code. This is what most SMSCs expect in ``short_message``
  with ``data_coding`` 0, so it is what :func:`encode` returns for :attr:`Encoding.GSM7`.
* *packed*: septets packed LSB first into octets, as on the air interface
  (3GPP TS 23.038 §6.1.2.1.1), optionally preceded by fill bits so that text after a
  User Data Header starts on a septet boundary (3GPP TS 23.040 §9.2.3.24).
* *str*: Python text.

UCS-2 here means UTF-16 big-endian: characters outside the Basic Multilingual Plane
(emoji) travel as surrogate pairs and cost two units, which is what handsets do.

Decoding never raises on bad input: what cannot be decoded becomes U+FFFD. The
``data_coding`` values of SMPP 3.4 §5.2.19 are :class:`smpp.pdu.DataCoding`; values from
0x10 up follow the GSM data coding scheme (3GPP TS 23.038 §4), read by
:func:`alphabet_of` and :func:`message_class_of`.
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Iterable

from smpp.errors import SmppError
from smpp.pdu import DataCoding

REPLACEMENT = "\ufffd"
ESC = 0x1B


class UnencodableError(SmppError, ValueError):
    """Text holds a character the requested alphabet cannot carry."""


# 3GPP TS 23.038 §6.2.1: the GSM 7-bit default alphabet, indexed by septet value.
# 0x1B is the escape to the extension table and has no character of its own.
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_GSM_BASIC) == 128

# 3GPP TS 23.038 §6.2.1.1: the default extension table, reached through ESC. Each of these
# costs two septets. (0x0D and 0x1B in that table are control codes, not characters.)
_GSM_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_CHAR_TO_SEPTETS: dict[str, bytes] = {
    ch: bytes([code]) for code, ch in enumerate(_GSM_BASIC) if code != ESC
}
_CHAR_TO_SEPTETS.update({ch: bytes([ESC, code]) for code, ch in _GSM_EXTENSION.items()})

# str.translate tables, so that encoding and the common decoding case run in C: text to
# septets written as code points 0-127, and septets without ESC back to text.
_ENCODE_TABLE = str.maketrans({ch: code.decode("latin-1") for ch, code in _CHAR_TO_SEPTETS.items()})
_DECODE_TABLE = str.maketrans(
    {code: ch for code, ch in enumerate(_GSM_BASIC) if code != ESC}
    | {code: REPLACEMENT for code in range(0x80, 0x100)}
)

GSM7_CHARACTERS = frozenset(_CHAR_TO_SEPTETS)
"""Every character GSM 7-bit can carry (default alphabet plus extension table)."""

GSM7_EXTENSION_CHARACTERS = frozenset(_GSM_EXTENSION.values())
"""The characters that cost two septets (ESC + code)."""


class Encoding(enum.StrEnum):
    """An alphabet this library can put into ``short_message``."""

    GSM7 = "gsm7"
    LATIN1 = "latin1"
    UCS2 = "ucs2"
    BINARY = "binary"


DATA_CODING_OF: dict[Encoding, int] = {
    Encoding.GSM7: DataCoding.SMSC_DEFAULT,
    Encoding.LATIN1: DataCoding.LATIN_1,
    Encoding.UCS2: DataCoding.UCS2,
    Encoding.BINARY: DataCoding.OCTET_UNSPECIFIED,
}
"""The plain ``data_coding`` sent for each encoding."""

# Flash SMS is message class 0 (3GPP TS 23.038 §4, coding group 00xx with bit 4 set).
_FLASH_DATA_CODING = {
    Encoding.GSM7: 0x10,
    Encoding.BINARY: 0x14,
    Encoding.UCS2: 0x18,
}


def flash_data_coding(encoding: Encoding | str) -> int:
    """``data_coding`` for a flash (class 0) message in ``encoding``.

    GSM7 gives 0x10, 8-bit binary 0x14, UCS-2 0x18. Latin-1 has no class-0 form in the
    GSM scheme, so asking for it raises :class:`ValueError`.
    """
    encoding = Encoding(encoding)
    try:
        return _FLASH_DATA_CODING[encoding]
    except KeyError:
        raise ValueError(f"{encoding} text cannot be sent as a flash message") from None


def message_class_of(data_coding: int) -> int | None:
    """The GSM message class (0-3) carried by ``data_coding``, or None when it has none.

    Class 0 is "flash": shown at once and not stored. 3GPP TS 23.038 §4: groups 00xx and
    01xx carry a class when bit 4 is set; group 1111 always does. SMPP's own 0x00-0x0F
    values carry none.
    """
    if data_coding < 0x10:
        return None
    group = data_coding >> 4
    if group <= 0b0111 and data_coding & 0x10:
        return data_coding & 0x03
    if group == 0b1111:
        return data_coding & 0x03
    return None


# SMPP 3.4 §5.2.19 values and the alphabet each names. JIS (0x05), pictogram (0x09) and
# extended kanji (0x0D) have no faithful Python codec and are handed over as octets.
_SMPP_ALPHABETS: dict[int, str] = {
    DataCoding.IA5: "ascii",
    DataCoding.OCTET_UNSPECIFIED: Encoding.BINARY,
    DataCoding.LATIN_1: Encoding.LATIN1,
    DataCoding.OCTET_UNSPECIFIED_8BIT: Encoding.BINARY,
    DataCoding.JIS: Encoding.BINARY,
    DataCoding.CYRILLIC: "iso8859_5",
    DataCoding.LATIN_HEBREW: "iso8859_8",
    DataCoding.UCS2: Encoding.UCS2,
    DataCoding.PICTOGRAM: Encoding.BINARY,
    DataCoding.ISO_2022_JP: "iso2022_jp",
    DataCoding.EXTENDED_KANJI: Encoding.BINARY,
    DataCoding.KS_C_5601: "euc_kr",
}


def alphabet_of(data_coding: int, *, smsc_default: Encoding = Encoding.GSM7) -> str:
    """Name of the alphabet ``data_coding`` announces.

    Returns an :class:`Encoding` value for the alphabets encoded here, ``"ascii"`` for
    IA5, the name of a Python codec for the other SMPP national alphabets, or
    :attr:`Encoding.BINARY` for 8-bit data, compressed text and JIS/pictogram codings
    not decoded here. ``smsc_default`` says what 0x00 (and reserved values) mean for
    the SMSC at hand; GSM 7-bit unless configured otherwise.
    """
    if not 0 <= data_coding <= 0xFF:
        raise ValueError(f"data_coding out of range: {data_coding}")
    if data_coding < 0x10:
        # Reserved SMPP values fall back to the SMSC default, like 0 itself.
        return _SMPP_ALPHABETS.get(data_coding, smsc_default)
    group = data_coding >> 4
    if group <= 0b0111:  # 3GPP TS 23.038 §4 general data coding (01xx: auto-deletion)
        if data_coding & 0x20:  # compressed text: not decompressed here
            return Encoding.BINARY
        return (Encoding.GSM7, Encoding.BINARY, Encoding.UCS2, Encoding.GSM7)[
            (data_coding >> 2) & 0x03
        ]
    if group in (0b1100, 0b1101):  # message waiting indication, GSM 7-bit
        return Encoding.GSM7
    if group == 0b1110:  # message waiting indication, UCS-2
        return Encoding.UCS2
    if group == 0b1111:  # data coding / message class
        return Encoding.BINARY if data_coding & 0x04 else Encoding.GSM7
    # 1000..1011 are reserved; TS 23.038 §4 says to read them as the default alphabet.
    return Encoding.GSM7


# --- GSM 7-bit ---------------------------------------------------------------------------


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM 7-bit alphabet or its extension."""
    return GSM7_CHARACTERS.issuperset(text)


def _unencodable_gsm7(text: str) -> UnencodableError:
    bad = next(ch for ch in text if ch not in GSM7_CHARACTERS)
    return UnencodableError(f"character {bad!r} is not in the GSM 7-bit alphabet")


def gsm7_length(text: str) -> int:
    """Septets ``text`` needs in GSM 7-bit (extension characters count two).

    Raises :class:`UnencodableError` when a character is not representable.
    """
    if not GSM7_CHARACTERS.issuperset(text):
        raise _unencodable_gsm7(text)
    return len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION_CHARACTERS)


def encode_gsm7(text: str) -> bytes:
    """``text`` as unpacked septets, one per octet (extension chars as ESC + code).

    Raises :class:`UnencodableError` on a character outside the alphabet.
    """
    if not GSM7_CHARACTERS.issuperset(text):
        raise _unencodable_gsm7(text)
    return text.translate(_ENCODE_TABLE).encode("latin-1")


def decode_gsm7(septets: bytes) -> str:
    """Unpacked septets back to text; never raises.

    An octet above 0x7F or a trailing lone ESC becomes U+FFFD. An ESC followed by a code the
    extension table does not define shows the default-alphabet character for that code, as
    3GPP TS 23.038 §6.2.1.1 asks of a receiver.
    """
    if ESC not in septets:
        return septets.decode("latin-1").translate(_DECODE_TABLE)
    out: list[str] = []
    i, n = 0, len(septets)
    while i < n:
        code = septets[i]
        i += 1
        if code > 0x7F:
            out.append(REPLACEMENT)
        elif code != ESC:
            out.append(_GSM_BASIC[code])
        elif i == n:
            out.append(REPLACEMENT)
        else:
            nxt = septets[i]
            i += 1
            if nxt > 0x7F:
                out.append(REPLACEMENT)
            elif nxt in _GSM_EXTENSION:
                out.append(_GSM_EXTENSION[nxt])
            elif nxt == ESC:
                # ESC ESC would announce a further extension table (none is defined):
                # show a space, the documented fallback for an unknown escape.
                out.append(" ")
            else:
                out.append(_GSM_BASIC[nxt])
    return "".join(out)


def fill_bits_after(udh_length: int) -> int:
    """Fill bits that follow a UDH of ``udh_length`` octets (UDHL included) in GSM 7-bit
    text, so that the first character starts on a septet boundary (3GPP TS 23.040
    §9.2.3.24). 6 octets (8-bit reference) need 1; 7 octets (16-bit reference) need 0."""
    return (7 - (udh_length * 8) % 7) % 7


def pack_septets(septets: Iterable[int], fill_bits: int = 0) -> bytes:
    """Pack 7-bit values LSB first into octets, after ``fill_bits`` zero bits (0-6).

    When exactly seven bits are left over at the end they are filled with CR rather than
    zeros, so that a reader without the septet count does not see a spurious '@'
    (3GPP TS 23.038 §6.1.2.1.1).
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0-6, not {fill_bits}")
    out = bytearray()
    acc = 0
    nbits = fill_bits
    any_septet = False
    for s in septets:
        if not 0 <= s <= 0x7F:
            raise ValueError(f"septet out of range: {s}")
        any_septet = True
        acc |= s << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if not any_septet:
        return b""
    if nbits == 1:
        # Seven spare bits: pad with CR (0x0D), not with a septet of zeros.
        acc |= 0x0D << 1
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, fill_bits: int = 0, count: int | None = None) -> bytes:
    """Unpack octets into septets (one per byte), skipping ``fill_bits`` leading bits.

    ``count`` is the number of septets when known (the TP-UDL of an SMS). Without it every
    whole septet is read, and a final CR that could only be the padding described in
    :func:`pack_septets` is dropped.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0-6, not {fill_bits}")
    available = (len(data) * 8 - fill_bits) // 7 if data else 0
    want = available if count is None else min(count, available)
    value = int.from_bytes(data, "little") >> fill_bits
    out = bytearray(want)
    for i in range(want):
        out[i] = (value >> (7 * i)) & 0x7F
    if count is None and want and out[-1] == 0x0D and (len(data) * 8 - fill_bits) % 7 == 0:
        # The last septet exactly filled the final octet: after a message of 8n-1
        # septets it is the CR padding, not text.
        del out[-1]
    return bytes(out)


def encode_gsm7_packed(text: str, fill_bits: int = 0) -> bytes:
    """``text`` as packed GSM 7-bit, after ``fill_bits`` zero bits."""
    return pack_septets(encode_gsm7(text), fill_bits)


def decode_gsm7_packed(data: bytes, fill_bits: int = 0, count: int | None = None) -> str:
    """Packed GSM 7-bit back to text; never raises. See :func:`unpack_septets`."""
    return decode_gsm7(unpack_septets(data, fill_bits, count))


# --- encoding and decoding by name --------------------------------------------------------


def encode(text: str, encoding: Encoding | str) -> bytes:
    """``text`` in ``encoding``: unpacked septets, Latin-1 octets, or UTF-16BE.

    Raises :class:`UnencodableError` when the text is not representable; BINARY is not a text
    encoding and is refused.
    """
    encoding = Encoding(encoding)
    if encoding is Encoding.GSM7:
        return encode_gsm7(text)
    if encoding is Encoding.LATIN1:
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise UnencodableError(f"character {text[exc.start]!r} is not in Latin-1") from None
    if encoding is Encoding.UCS2:
        try:
            return text.encode("utf-16-be")
        except UnicodeEncodeError as exc:  # a lone surrogate in the str
            raise UnencodableError(
                f"character {text[exc.start]!r} cannot be sent as UCS-2"
            ) from None
    raise ValueError(f"{encoding} is not a text encoding")


def ucs2_length(text: str) -> int:
    """UTF-16 code units of ``text``: characters beyond U+FFFF count two."""
    return len(text.encode("utf-16-be", "surrogatepass")) // 2


def can_encode(text: str, encoding: Encoding | str) -> bool:
    """True when ``text`` is representable in ``encoding``."""
    encoding = Encoding(encoding)
    if encoding is Encoding.GSM7:
        return is_gsm7(text)
    if encoding is Encoding.LATIN1:
        return not text or max(text) <= "\xff"
    if encoding is Encoding.UCS2:
        try:
            text.encode("utf-16-be")
        except UnicodeEncodeError:  # a lone surrogate
            return False
        return True
    return False


def decode_as(data: bytes, alphabet: str, *, gsm7_packed: bool = False) -> str:
    """Decode ``data`` written in ``alphabet`` (a value :func:`alphabet_of` returns).

    Never raises: undecodable input becomes U+FFFD. BINARY is read octet for octet as
    Latin-1, which keeps every byte (callers that care check :func:`alphabet_of` first).
    """
    if alphabet == Encoding.GSM7:
        return decode_gsm7_packed(data) if gsm7_packed else decode_gsm7(data)
    if alphabet == Encoding.UCS2:
        # An odd trailing octet or a lone surrogate becomes U+FFFD.
        return data.decode("utf-16-be", errors="replace")
    if alphabet in (Encoding.LATIN1, Encoding.BINARY):
        return data.decode("latin-1")
    try:
        codecs.lookup(alphabet)
    except LookupError:
        raise ValueError(f"unknown alphabet {alphabet!r}") from None
    return data.decode(alphabet, errors="replace")


def decode(
    data: bytes,
    data_coding: int,
    *,
    smsc_default: Encoding = Encoding.GSM7,
    gsm7_packed: bool = False,
) -> str:
    """Text of a ``short_message`` (or ``message_payload``) sent with ``data_coding``.

    Tolerant of bad input: undecodable octets become U+FFFD and nothing raises for any
    ``data_coding`` in 0-255. GSM 7-bit is read unpacked unless ``gsm7_packed``;
    ``smsc_default`` says what ``data_coding`` 0 means for this SMSC.
    """
    return decode_as(
        data, alphabet_of(data_coding, smsc_default=smsc_default), gsm7_packed=gsm7_packed
    )
