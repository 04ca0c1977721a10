"""User Data Header: concatenation elements built and parsed, other elements tolerated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp.errors import SmppError
from smpp.udh import (
    ESM_CLASS_UDHI,
    IEI_CONCAT_8,
    IEI_CONCAT_16,
    Concat,
    InformationElement,
    UdhError,
    build_udh,
    concat_udh,
    parse_udh,
)

CONCAT_HEADERS = [
    (0x42, 3, 1, False, "050003420301"),
    (0xFF, 255, 255, False, "050003ffffff"),
    (0x1234, 2, 2, True, "06080412340202"),
    (0, 10, 9, True, "06080400000a09"),
]


@pytest.mark.parametrize(("ref", "total", "seq", "wide", "hexed"), CONCAT_HEADERS)
def test_concat_header_both_ways(ref: int, total: int, seq: int, wide: bool, hexed: str) -> None:
    assert concat_udh(ref, total, seq, wide_reference=wide).hex() == hexed
    parsed = parse_udh(bytes.fromhex(hexed) + b"payload")
    assert parsed.concat == Concat(ref, total, seq, wide_reference=wide)
    assert parsed.payload == b"payload"
    assert parsed.header_length == len(hexed) // 2


def test_constants() -> None:
    assert ESM_CLASS_UDHI == 0x40
    assert (IEI_CONCAT_8, IEI_CONCAT_16) == (0x00, 0x08)


def test_other_elements_before_and_after_concat_are_kept() -> None:
    # Port addressing (0x05) before, a national language shift (0x25) after.
    data = bytes.fromhex("0e 05040b840000 0003070302 250101") + b"text"
    parsed = parse_udh(data)
    assert [ie.iei for ie in parsed.elements] == [0x05, 0x00, 0x25]
    assert parsed.elements[0] == InformationElement(0x05, bytes.fromhex("0b840000"))
    assert parsed.concat == Concat(7, 3, 2)
    assert parsed.payload == b"text"


def test_no_concat_element() -> None:
    parsed = parse_udh(bytes.fromhex("0401020304") + b"x")
    assert parsed.concat is None
    assert parsed.payload == b"x"
    empty = parse_udh(b"\x00abc")
    assert empty.elements == () and empty.payload == b"abc" and empty.concat is None


@pytest.mark.parametrize(
    "hexed",
    [
        "050003010300",  # sequence 0
        "050003010304",  # sequence past the total
        "050003010001",  # total 0
        "0400020101",  # concat element of the wrong length
    ],
)
def test_unusable_concat_element_is_ignored(hexed: str) -> None:
    assert parse_udh(bytes.fromhex(hexed)).concat is None


def test_repeated_concat_element_last_wins() -> None:
    data = bytes.fromhex("0a 0003010201 0003020302")
    assert parse_udh(data).concat == Concat(2, 3, 2)


@pytest.mark.parametrize(
    "hexed",
    [
        "",  # nothing at all
        "05000301",  # UDHL longer than the data
        "0300050102",  # element overruns the header
        "0100",  # element header cut short
    ],
)
def test_malformed_header_raises(hexed: str) -> None:
    with pytest.raises(UdhError):
        parse_udh(bytes.fromhex(hexed))
    assert issubclass(UdhError, SmppError)


@pytest.mark.parametrize(
    ("ref", "total", "seq", "wide"),
    [(256, 2, 1, False), (-1, 2, 1, False), (65536, 2, 1, True), (1, 0, 1, False),
     (1, 2, 3, False), (1, 256, 1, False), (1, 2, 0, True)],
)  # fmt: skip
def test_concat_udh_rejects_bad_positions(ref: int, total: int, seq: int, wide: bool) -> None:
    with pytest.raises(ValueError):
        concat_udh(ref, total, seq, wide_reference=wide)


ELEMENTS = st.lists(
    st.builds(InformationElement, st.integers(0, 255), st.binary(max_size=20)), max_size=8
)


@given(ELEMENTS, st.binary(max_size=140))
def test_build_parse_round_trip(elements: list[InformationElement], payload: bytes) -> None:
    header = build_udh(elements)
    parsed = parse_udh(header + payload)
    assert list(parsed.elements) == elements
    assert parsed.payload == payload
    assert parsed.header_length == len(header)


@given(st.binary(max_size=60))
def test_parse_never_fails_otherwise(data: bytes) -> None:
    try:
        parsed = parse_udh(data)
    except UdhError:
        return
    assert parsed.header_length + len(parsed.payload) == len(data)
