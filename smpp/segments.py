"""Choosing an alphabet, counting parts, and splitting long messages into parts.

One SMS carries 140 octets of user data (3GPP TS 23.040 §9.2.3.16). That is 160 GSM
septets, 140 Latin-1 or binary octets, or 70 UCS-2 units. A longer message goes in parts,
each of which loses room to the concatenation header:

=========  ======  ==================  ===================
alphabet   single  per part, 8-bit ref  per part, 16-bit ref
=========  ======  ==================  ===================
GSM 7-bit  160     153 septets         152 septets
UCS-2      70      67 units            66 units
8-bit      140     134 octets          133 octets
=========  ======  ==================  ===================

Parts are cut on character boundaries: an extension character (ESC + code) and a UTF-16
surrogate pair are never split, so a part may hold one unit less than its limit.

Four ways to send a long message (:class:`ConcatMethod`): a UDH with an 8-bit or a 16-bit
reference in each part's ``short_message``; the SAR TLVs of SMPP 3.4 §5.3.2.22-24 with the
bare text in ``short_message`` (the SMSC writes the UDH, so parts are cut to the 16-bit
reference limits, which fit whichever header it picks); or the whole text in one
``message_payload`` TLV (SMPP 3.4 §5.3.2.32), which the SMSC splits itself and which is
counted, for billing, as parts of the 8-bit-reference size.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from smpp.encoding import (
    DATA_CODING_OF,
    ESC,
    Encoding,
    alphabet_of,
    can_encode,
    encode,
    fill_bits_after,
    flash_data_coding,
    pack_septets,
)
from smpp.transliteration import transliterate as _transliterate
from smpp.udh import CONCAT_UDH_LENGTH, concat_udh

SMS_USER_DATA_OCTETS = 140
MAX_PARTS = 255  # the total of a concatenation element is one octet


class ConcatMethod(enum.StrEnum):
    """How the parts of a long message say they belong together."""

    UDH8 = "udh8"
    UDH16 = "udh16"
    SAR = "sar"
    PAYLOAD = "payload"


def _wide_reference(method: ConcatMethod) -> bool:
    # SAR: sar_msg_ref_num is 16 bits, so the SMSC may well write a 16-bit header.
    return method in (ConcatMethod.UDH16, ConcatMethod.SAR)


def capacity(encoding: Encoding | str, udh_length: int = 0) -> int:
    """Units of ``encoding`` that fit one SMS after a UDH of ``udh_length`` octets."""
    encoding = Encoding(encoding)
    room = SMS_USER_DATA_OCTETS - udh_length
    if encoding is Encoding.GSM7:
        return (room * 8 - fill_bits_after(udh_length)) // 7
    if encoding is Encoding.UCS2:
        return room // 2
    return room


_LIMITS = {
    (encoding, method): (
        capacity(encoding, 0),
        capacity(encoding, CONCAT_UDH_LENGTH[_wide_reference(method)]),
    )
    for encoding in Encoding
    for method in ConcatMethod
}


def part_limits(
    encoding: Encoding | str, method: ConcatMethod | str = ConcatMethod.UDH8
) -> tuple[int, int]:
    """``(single, per_part)``: units in a one-part message, and in each part of a longer one."""
    try:
        # StrEnum members hash and compare as their values, so plain strings look up too.
        return _LIMITS[(encoding, method)]
    except KeyError:
        raise ValueError(f"unknown encoding or method: {encoding!r}, {method!r}") from None


@dataclass(frozen=True, slots=True)
class EncodedText:
    """Text in the alphabet chosen for it.

    ``payload`` is what goes into ``short_message``/``message_payload``: unpacked septets
    (one per octet) for GSM 7-bit, Latin-1 octets, UTF-16BE for UCS-2, raw octets for
    binary. ``units`` is its length in septets, octets or UTF-16 units. ``text`` is the
    text as it will arrive (after any transliteration); None for binary data.
    """

    encoding: Encoding
    data_coding: int
    payload: bytes
    units: int
    text: str | None

    @classmethod
    def from_bytes(cls, payload: bytes, data_coding: int) -> EncodedText:
        """Wrap an already encoded payload (e.g. one an SMPP client sent) for splitting.

        GSM 7-bit is taken as unpacked septets. Alphabets other than GSM 7-bit, Latin-1 and
        UCS-2 (IA5 and the national ones included) are split octet by octet like binary
        data, which is never more than an SMS holds.
        """
        alphabet = alphabet_of(data_coding)
        if alphabet == Encoding.UCS2:
            if len(payload) % 2:
                raise ValueError("UCS-2 payload has an odd number of octets")
            return cls(Encoding.UCS2, data_coding, payload, len(payload) // 2, None)
        encoding = Encoding(alphabet) if alphabet in (Encoding.GSM7, Encoding.LATIN1) else None
        return cls(encoding or Encoding.BINARY, data_coding, payload, len(payload), None)


def encode_text(text: str, encoding: Encoding | str, *, flash: bool = False) -> EncodedText:
    """``text`` in the given ``encoding``; :class:`~smpp.encoding.UnencodableError` when it
    is not representable."""
    encoding = Encoding(encoding)
    payload = encode(text, encoding)
    data_coding = flash_data_coding(encoding) if flash else DATA_CODING_OF[encoding]
    units = len(payload) // 2 if encoding is Encoding.UCS2 else len(payload)
    return EncodedText(encoding, data_coding, payload, units, text)


def choose_encoding(
    text: str,
    *,
    allow_latin1: bool = False,
    transliterate: bool = False,
    flash: bool = False,
    method: ConcatMethod | str = ConcatMethod.UDH8,
) -> EncodedText:
    """The cheapest alphabet that carries ``text``.

    GSM 7-bit when every character is in it; otherwise UCS-2. Latin-1 is considered only
    with ``allow_latin1`` (many carriers mangle ``data_coding`` 3) and only when it needs
    fewer parts than GSM 7-bit; never for flash messages, which Latin-1 cannot express.

    With ``transliterate``, look-alike characters are replaced first
    (:func:`smpp.transliteration.transliterate`); if the text still needs UCS-2 it is
    sent as written, since replacing characters then saves nothing.
    """
    candidates = [text]
    if transliterate:
        replaced = _transliterate(text)
        if replaced != text:
            candidates.insert(0, replaced)
    options: list[EncodedText] = []
    for candidate in candidates:
        if can_encode(candidate, Encoding.GSM7):
            options.append(encode_text(candidate, Encoding.GSM7, flash=flash))
        if allow_latin1 and not flash and can_encode(candidate, Encoding.LATIN1):
            options.append(encode_text(candidate, Encoding.LATIN1))
        if len(options) == 1:
            return options[0]
        if options:
            # Fewest parts wins; on a tie the earlier option (GSM 7-bit) does.
            return min(options, key=lambda option: _count(option, ConcatMethod(method))[0])
    return encode_text(text, Encoding.UCS2, flash=flash)


def _splits_character(payload: bytes, encoding: Encoding, start: int, end: int) -> bool:
    """True when cutting ``payload[start:]`` at ``end`` would split a character."""
    if encoding is Encoding.GSM7:
        # An ESC takes the next septet with it (3GPP TS 23.038 §6.2.1.1). Within a run of
        # ESCs they pair off from the run's start, so an odd run ending just before the
        # cut means its last ESC belongs with the septet after the cut.
        run = 0
        i = end - 1
        while i >= start and payload[i] == ESC:
            run += 1
            i -= 1
        return run % 2 == 1
    if encoding is Encoding.UCS2:
        # A high surrogate just before the cut with its low surrogate just after it.
        return payload[end - 2] & 0xFC == 0xD8 and payload[end] & 0xFC == 0xDC
    return False


def _cut(encoded: EncodedText, method: ConcatMethod) -> list[tuple[int, int]]:
    """``(start, end)`` octet offsets of each part of ``encoded.payload``.

    Greedy: each part takes as many whole characters as fit its limit.
    """
    single, per_part = part_limits(encoded.encoding, method)
    payload = encoded.payload
    if encoded.units <= single:
        return [(0, len(payload))]
    unit = 2 if encoded.encoding is Encoding.UCS2 else 1
    limit = per_part * unit
    cuts: list[tuple[int, int]] = []
    start = 0
    while len(payload) - start > limit:
        end = start + limit
        if _splits_character(payload, encoded.encoding, start, end):
            end -= unit
        cuts.append((start, end))
        start = end
    cuts.append((start, len(payload)))
    return cuts


def _count(encoded: EncodedText, method: ConcatMethod) -> tuple[int, int, int]:
    """``(parts, per_part_limit, remaining_in_last_part)``."""
    cuts = _cut(encoded, method)
    single, per_part = part_limits(encoded.encoding, method)
    limit = single if len(cuts) == 1 else per_part
    octets_per_unit = 2 if encoded.encoding is Encoding.UCS2 else 1
    start, end = cuts[-1]
    return len(cuts), limit, limit - (end - start) // octets_per_unit


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """What the portal's counter shows and what billing charges for.

    ``characters`` counts code points of the text as sent; ``units`` counts septets,
    UTF-16 units or octets; ``per_part_limit`` is the single-message limit when the text
    fits one part, the per-part limit otherwise. An empty text is one part.
    """

    encoding: Encoding
    data_coding: int
    characters: int
    units: int
    parts: int
    per_part_limit: int
    remaining_in_last_part: int


def count_segments(
    message: str | EncodedText,
    *,
    allow_latin1: bool = False,
    transliterate: bool = False,
    flash: bool = False,
    method: ConcatMethod | str = ConcatMethod.UDH8,
) -> SegmentCount:
    """Count the parts ``message`` takes; a str goes through :func:`choose_encoding` first."""
    method = ConcatMethod(method)
    if isinstance(message, str):
        encoded = choose_encoding(
            message,
            allow_latin1=allow_latin1,
            transliterate=transliterate,
            flash=flash,
            method=method,
        )
    else:
        encoded = message
    parts, limit, remaining = _count(encoded, method)
    characters = len(encoded.text) if encoded.text is not None else encoded.units
    return SegmentCount(
        encoding=encoded.encoding,
        data_coding=encoded.data_coding,
        characters=characters,
        units=encoded.units,
        parts=parts,
        per_part_limit=limit,
        remaining_in_last_part=remaining,
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``submit_sm`` worth of a message: its ``short_message`` and the fields to set.

    ``udhi`` says ``esm_class`` must carry :data:`smpp.udh.ESM_CLASS_UDHI`. The ``sar_*``
    values are set for :attr:`ConcatMethod.SAR` parts of a multi-part message;
    ``message_payload`` for :attr:`ConcatMethod.PAYLOAD` (``short_message`` is then empty).
    """

    short_message: bytes
    udhi: bool = False
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    message_payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class SplitMessage:
    """A message ready to submit: its alphabet, ``data_coding`` and parts in order."""

    encoding: Encoding
    data_coding: int
    segments: tuple[Segment, ...]


def split_message(
    message: str | EncodedText,
    *,
    reference: int,
    method: ConcatMethod | str = ConcatMethod.UDH8,
    allow_latin1: bool = False,
    transliterate: bool = False,
    flash: bool = False,
    gsm7_packed: bool = False,
) -> SplitMessage:
    """Split ``message`` into the parts to submit.

    ``reference`` identifies the message among the sender's recent long messages to the
    same recipient (0-255 for UDH8, 0-65535 otherwise); the caller keeps the counter. A
    message that fits one SMS is one plain segment, whatever the method. GSM 7-bit goes
    unpacked unless ``gsm7_packed``, in which case each part is packed after its UDH with
    the fill bits that align the text (at most 140 octets a part). Raises
    :class:`ValueError` for more than 255 parts or a reference out of range.
    """
    method = ConcatMethod(method)
    if isinstance(message, str):
        encoded = choose_encoding(
            message,
            allow_latin1=allow_latin1,
            transliterate=transliterate,
            flash=flash,
            method=method,
        )
    else:
        encoded = message
    max_reference = 0xFF if method is ConcatMethod.UDH8 else 0xFFFF
    if not 0 <= reference <= max_reference:
        raise ValueError(f"reference {reference} out of range for {method}")
    payload = encoded.payload
    packed = gsm7_packed and encoded.encoding is Encoding.GSM7

    def body(chunk: bytes, udh: bytes = b"") -> bytes:
        if packed:
            return udh + pack_septets(chunk, fill_bits_after(len(udh)) if udh else 0)
        return udh + chunk

    if method is ConcatMethod.PAYLOAD:
        segment = Segment(short_message=b"", message_payload=body(payload))
        return SplitMessage(encoded.encoding, encoded.data_coding, (segment,))
    cuts = _cut(encoded, method)
    total = len(cuts)
    if total > MAX_PARTS:
        raise ValueError(f"message needs {total} parts; at most {MAX_PARTS} can be linked")
    if total == 1:
        segments: tuple[Segment, ...] = (Segment(short_message=body(payload)),)
    elif method is ConcatMethod.SAR:
        segments = tuple(
            Segment(
                short_message=body(payload[start:end]),
                sar_msg_ref_num=reference,
                sar_total_segments=total,
                sar_segment_seqnum=seq,
            )
            for seq, (start, end) in enumerate(cuts, 1)
        )
    else:
        wide = method is ConcatMethod.UDH16
        segments = tuple(
            Segment(
                short_message=body(
                    payload[start:end], concat_udh(reference, total, seq, wide_reference=wide)
                ),
                udhi=True,
            )
            for seq, (start, end) in enumerate(cuts, 1)
        )
    return SplitMessage(encoded.encoding, encoded.data_coding, segments)
