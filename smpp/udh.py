"""User Data Header of a short message: build and parse (3GPP TS 23.040 §9.2.3.24).

A ``short_message`` starts with a UDH when ``esm_class`` has the UDHI bit
(:data:`ESM_CLASS_UDHI`, SMPP 3.4 §5.2.12); setting that bit is the caller's business.
The header is UDHL (its own length, not counting itself) followed by information
elements, each IEI, IEDL, data. This module builds only the concatenation elements; it
parses any header and keeps the elements it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from smpp.errors import SmppError

ESM_CLASS_UDHI = 0x40
"""``esm_class`` bit saying ``short_message`` begins with a UDH (SMPP 3.4 §5.2.12)."""

IEI_CONCAT_8 = 0x00
"""Concatenated short messages, 8-bit reference (3GPP TS 23.040 §9.2.3.24.1)."""

IEI_CONCAT_16 = 0x08
"""Concatenated short messages, 16-bit reference (3GPP TS 23.040 §9.2.3.24.8)."""

CONCAT_UDH_LENGTH = {False: 6, True: 7}
"""Octets a concatenation UDH occupies, UDHL included, by ``wide_reference``."""


class UdhError(SmppError, ValueError):
    """The User Data Header a peer sent is malformed: lengths run past the data."""


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One element of a UDH: its identifier and its data."""

    iei: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Concat:
    """Position of one part in a concatenated message."""

    reference: int
    total: int
    sequence: int
    wide_reference: bool = False


@dataclass(frozen=True, slots=True)
class UserData:
    """A ``short_message`` split into its header elements and the payload after them."""

    elements: tuple[InformationElement, ...]
    header_length: int  # octets, UDHL included
    payload: bytes

    @property
    def concat(self) -> Concat | None:
        """The concatenation element, or None when absent or unusable.

        3GPP TS 23.040 §9.2.3.24.1: an element whose sequence number is 0 or exceeds the
        total is ignored; when the element repeats, the last occurrence counts.
        """
        found: Concat | None = None
        for ie in self.elements:
            if ie.iei == IEI_CONCAT_8 and len(ie.data) == 3:
                candidate = Concat(ie.data[0], ie.data[1], ie.data[2], wide_reference=False)
            elif ie.iei == IEI_CONCAT_16 and len(ie.data) == 4:
                candidate = Concat(
                    int.from_bytes(ie.data[:2], "big"), ie.data[2], ie.data[3], wide_reference=True
                )
            else:
                continue
            if candidate.total >= 1 and 1 <= candidate.sequence <= candidate.total:
                found = candidate
        return found


def parse_udh(short_message: bytes) -> UserData:
    """Split a ``short_message`` whose UDHI bit is set into header elements and payload.

    Raises :class:`UdhError` when the header's lengths do not fit the data.
    """
    if not short_message:
        raise UdhError("empty short_message cannot carry a UDH")
    udhl = short_message[0]
    end = 1 + udhl
    if end > len(short_message):
        raise UdhError(f"UDH length {udhl} exceeds the {len(short_message) - 1} octets that follow")
    elements: list[InformationElement] = []
    i = 1
    while i < end:
        if i + 2 > end:
            raise UdhError(f"truncated information element at offset {i}")
        iei, iedl = short_message[i], short_message[i + 1]
        start = i + 2
        if start + iedl > end:
            raise UdhError(f"information element 0x{iei:02x} at offset {i} overruns the UDH")
        elements.append(InformationElement(iei, bytes(short_message[start : start + iedl])))
        i = start + iedl
    return UserData(tuple(elements), end, bytes(short_message[end:]))


def build_udh(elements: list[InformationElement] | tuple[InformationElement, ...]) -> bytes:
    """Encode information elements as a UDH, UDHL first."""
    body = bytearray()
    for ie in elements:
        if not 0 <= ie.iei <= 0xFF or len(ie.data) > 0xFF:
            raise ValueError(f"information element 0x{ie.iei:x} does not fit a UDH")
        body += bytes([ie.iei, len(ie.data)]) + ie.data
    if len(body) > 0xFF:
        raise ValueError("UDH longer than 255 octets")
    return bytes([len(body)]) + bytes(body)


def concat_udh(reference: int, total: int, sequence: int, *, wide_reference: bool = False) -> bytes:
    """The UDH of part ``sequence`` of ``total`` (both counted from 1) of message ``reference``.

    With an 8-bit reference it is ``05 00 03 RR TT SS``; with a 16-bit one
    ``06 08 04 RRRR TT SS``.
    """
    if not 1 <= total <= 255 or not 1 <= sequence <= total:
        raise ValueError(f"part {sequence} of {total} is not a valid concatenation position")
    if wide_reference:
        if not 0 <= reference <= 0xFFFF:
            raise ValueError(f"16-bit reference out of range: {reference}")
        data = reference.to_bytes(2, "big") + bytes([total, sequence])
        return build_udh([InformationElement(IEI_CONCAT_16, data)])
    if not 0 <= reference <= 0xFF:
        raise ValueError(f"8-bit reference out of range: {reference}")
    return build_udh([InformationElement(IEI_CONCAT_8, bytes([reference, total, sequence]))])
