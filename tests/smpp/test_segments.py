"""Part counting and splitting: limits at the boundaries, UDH/SAR/payload, reassembly."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smpp.encoding import ESC, Encoding, decode, fill_bits_after, unpack_septets
from smpp.reassembly import PartKey, Reassembler
from smpp.segments import (
    ConcatMethod,
    EncodedText,
    SegmentCount,
    capacity,
    choose_encoding,
    count_segments,
    encode_text,
    part_limits,
    split_message,
)
from smpp.udh import parse_udh

LIMITS = [
    (Encoding.GSM7, ConcatMethod.UDH8, (160, 153)),
    (Encoding.GSM7, ConcatMethod.UDH16, (160, 152)),
    (Encoding.GSM7, ConcatMethod.SAR, (160, 152)),
    (Encoding.GSM7, ConcatMethod.PAYLOAD, (160, 153)),
    (Encoding.UCS2, ConcatMethod.UDH8, (70, 67)),
    (Encoding.UCS2, ConcatMethod.UDH16, (70, 66)),
    (Encoding.LATIN1, ConcatMethod.UDH8, (140, 134)),
    (Encoding.BINARY, ConcatMethod.UDH8, (140, 134)),
    (Encoding.BINARY, ConcatMethod.UDH16, (140, 133)),
]


@pytest.mark.parametrize(("encoding", "method", "limits"), LIMITS)
def test_part_limits(encoding: Encoding, method: ConcatMethod, limits: tuple[int, int]) -> None:
    assert part_limits(encoding, method) == limits


def test_capacity_follows_udh_length() -> None:
    assert [capacity(Encoding.GSM7, n) for n in (0, 6, 7, 12)] == [160, 153, 152, 146]


# text, encoding, characters, units, parts, per_part_limit, remaining
COUNTS = [
    ("", Encoding.GSM7, 0, 0, 1, 160, 160),
    ("a" * 160, Encoding.GSM7, 160, 160, 1, 160, 0),
    ("a" * 161, Encoding.GSM7, 161, 161, 2, 153, 145),
    ("a" * 306, Encoding.GSM7, 306, 306, 2, 153, 0),
    ("a" * 307, Encoding.GSM7, 307, 307, 3, 153, 152),
    ("€" * 80, Encoding.GSM7, 80, 160, 1, 160, 0),
    ("€" * 81, Encoding.GSM7, 81, 162, 2, 153, 143),
    # 152 septets, then € would straddle the cut: it moves whole to part 2.
    ("a" * 152 + "€" + "a" * 151, Encoding.GSM7, 304, 305, 2, 153, 0),
    ("a" * 152 + "€" + "a" * 152, Encoding.GSM7, 305, 306, 3, 153, 152),
    ("a" * 151 + "€" + "a" * 151, Encoding.GSM7, 303, 304, 2, 153, 2),
    ("€" * 153, Encoding.GSM7, 153, 306, 3, 153, 151),  # 76 + 76 + 1 characters
    ("ж" * 70, Encoding.UCS2, 70, 70, 1, 70, 0),
    ("ж" * 71, Encoding.UCS2, 71, 71, 2, 67, 63),
    ("ж" * 134, Encoding.UCS2, 134, 134, 2, 67, 0),
    ("😀" * 35, Encoding.UCS2, 35, 70, 1, 70, 0),
    ("😀" * 36, Encoding.UCS2, 36, 72, 2, 67, 61),  # a pair is never cut: 66 + 6 units
    ("ж" * 66 + "😀" + "ж", Encoding.UCS2, 68, 69, 1, 70, 1),
    ("ж" * 66 + "😀" + "ж" * 4, Encoding.UCS2, 71, 72, 2, 67, 61),
]


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "units", "parts", "limit", "remaining"), COUNTS
)
def test_count_segments_at_boundaries(
    text: str,
    encoding: Encoding,
    characters: int,
    units: int,
    parts: int,
    limit: int,
    remaining: int,
) -> None:
    counted = count_segments(text)
    assert counted == SegmentCount(
        encoding=encoding,
        data_coding=0 if encoding is Encoding.GSM7 else 8,
        characters=characters,
        units=units,
        parts=parts,
        per_part_limit=limit,
        remaining_in_last_part=remaining,
    )
    assert len(split_message(text, reference=1).segments) == parts


def test_count_with_16_bit_reference_and_binary() -> None:
    assert count_segments("a" * 305, method=ConcatMethod.UDH16).parts == 3
    assert count_segments("a" * 304, method=ConcatMethod.UDH16).parts == 2
    binary = EncodedText.from_bytes(bytes(141), 4)
    assert binary.encoding is Encoding.BINARY
    counted = count_segments(binary)
    assert (counted.parts, counted.per_part_limit, counted.remaining_in_last_part) == (2, 134, 127)
    assert count_segments(EncodedText.from_bytes(bytes(140), 2)).parts == 1


def test_count_flash_and_latin1() -> None:
    assert count_segments("Hello", flash=True).data_coding == 0x10
    counted = count_segments("á" * 140, allow_latin1=True)
    assert (counted.encoding, counted.data_coding, counted.parts) == (Encoding.LATIN1, 3, 1)
    assert count_segments("á" * 141, allow_latin1=True).parts == 2


def test_ten_euro_signs_in_160_characters() -> None:
    text = "€" * 10 + "a" * 150  # 160 characters, 170 septets
    counted = count_segments(text)
    assert counted.characters == 160 and counted.units == 170 and counted.parts == 2
    for packed in (False, True):
        split = split_message(text, reference=9, gsm7_packed=packed)
        assert len(split.segments) == 2
        for segment in split.segments:
            assert segment.udhi
            if packed:
                assert len(segment.short_message) <= 140
            else:
                assert len(parse_udh(segment.short_message).payload) <= 153


def test_extension_character_never_split() -> None:
    text = "a" * 152 + "€" + "b" * 10
    first, second = split_message(text, reference=1).segments
    first_payload = parse_udh(first.short_message).payload
    second_payload = parse_udh(second.short_message).payload
    assert first_payload == b"a" * 152
    assert second_payload == bytes([ESC, 0x65]) + b"b" * 10


def test_surrogate_pair_never_split() -> None:
    text = "ж" * 66 + "😀" + "ж" * 10
    first, second = split_message(text, reference=1).segments
    assert decode(parse_udh(first.short_message).payload, 8) == "ж" * 66
    assert decode(parse_udh(second.short_message).payload, 8) == "😀" + "ж" * 10


def test_udh_parts_carry_the_concat_header() -> None:
    split = split_message("x" * 400, reference=0xAB)
    assert [s.short_message[:6].hex() for s in split.segments] == [
        "050003ab0301",
        "050003ab0302",
        "050003ab0303",
    ]
    wide = split_message("x" * 400, reference=0xABCD, method="udh16")
    assert wide.segments[2].short_message[:7].hex() == "060804abcd0303"
    assert all(s.udhi and s.sar_msg_ref_num is None for s in wide.segments)


def test_sar_parts_carry_values_not_headers() -> None:
    split = split_message("y" * 400, reference=0x1234, method=ConcatMethod.SAR)
    assert [
        (s.sar_msg_ref_num, s.sar_total_segments, s.sar_segment_seqnum) for s in split.segments
    ] == [(0x1234, 3, 1), (0x1234, 3, 2), (0x1234, 3, 3)]
    assert [len(s.short_message) for s in split.segments] == [152, 152, 96]
    assert not any(s.udhi for s in split.segments)


def test_payload_method_is_one_pdu() -> None:
    split = split_message("z" * 400, reference=0, method=ConcatMethod.PAYLOAD)
    (segment,) = split.segments
    assert segment.short_message == b"" and segment.message_payload == b"z" * 400
    assert not segment.udhi


def test_short_message_is_one_plain_segment() -> None:
    split = split_message("Hello", reference=3, method=ConcatMethod.SAR)
    assert split.segments[0].short_message == b"Hello"
    assert split.segments[0].sar_msg_ref_num is None and not split.segments[0].udhi
    packed = split_message("Hello", reference=3, gsm7_packed=True)
    assert packed.segments[0].short_message.hex() == "c8329bfd06"


def test_packed_parts_align_after_header() -> None:
    split = split_message("H" + "e" * 160, reference=7, gsm7_packed=True)
    first = parse_udh(split.segments[0].short_message)
    septets = unpack_septets(first.payload, fill_bits_after(first.header_length), count=153)
    assert decode(septets, 0) == "H" + "e" * 152


def test_split_refusals() -> None:
    with pytest.raises(ValueError):
        split_message("a" * 400, reference=256)
    with pytest.raises(ValueError):
        split_message("a" * 400, reference=70000, method="udh16")
    with pytest.raises(ValueError):
        split_message("a" * (153 * 255 + 1), reference=1)
    assert len(split_message("a" * (153 * 255), reference=1).segments) == 255
    with pytest.raises(ValueError):
        EncodedText.from_bytes(b"\x00", 8)


def test_split_encoded_bytes_from_a_client() -> None:
    payload = "ж".encode("utf-16-be") * 100
    split = split_message(EncodedText.from_bytes(payload, 8), reference=5)
    assert split.data_coding == 8
    assert [len(s.short_message) for s in split.segments] == [6 + 134, 6 + 66]


# --- property tests ------------------------------------------------------------------------

TEXT = st.one_of(
    st.text(alphabet="abc €{}[]^~|\\\f@£", max_size=700),
    st.text(alphabet="abcжщ😀🎉 ", max_size=300),
    st.text(max_size=300),
)


@given(TEXT, st.sampled_from(list(ConcatMethod)))
def test_count_agrees_with_split(text: str, method: ConcatMethod) -> None:
    counted = count_segments(text, method=method)
    split = split_message(text, reference=1, method=method)
    if method is not ConcatMethod.PAYLOAD:
        assert len(split.segments) == counted.parts
    single, per_part = part_limits(counted.encoding, method)
    assert counted.per_part_limit == (single if counted.parts == 1 else per_part)
    assert 0 <= counted.remaining_in_last_part <= counted.per_part_limit


def _reassemble_key(segment, message_id: int) -> tuple[PartKey, int, bytes]:
    if segment.udhi:
        user_data = parse_udh(segment.short_message)
        concat = user_data.concat
        assert concat is not None
        return (
            PartKey("111", "222", concat.reference, concat.total),
            concat.sequence,
            user_data.payload,
        )
    if segment.sar_msg_ref_num is not None:
        return (
            PartKey("111", "222", segment.sar_msg_ref_num, segment.sar_total_segments),
            segment.sar_segment_seqnum,
            segment.short_message,
        )
    return PartKey("111", "222", message_id, 1), 1, segment.short_message


@settings(max_examples=150)
@given(
    TEXT,
    st.sampled_from([ConcatMethod.UDH8, ConcatMethod.UDH16, ConcatMethod.SAR]),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_split_then_reassemble_in_any_order(
    text: str, method: ConcatMethod, packed: bool, rnd: random.Random
) -> None:
    # Packed, a part ending in CR on an octet boundary reads ambiguously without the
    # septet count (3GPP TS 23.038 §6.1.2.1.1), which SMPP does not carry.
    assume(not (packed and "\r" in text))
    split = split_message(text, reference=200, method=method, gsm7_packed=packed)
    expected = choose_encoding(text).text
    parts = list(split.segments)
    rnd.shuffle(parts)
    parts.append(rnd.choice(parts))  # a duplicate arrives too
    reassembler: Reassembler[None] = Reassembler(timeout=60)
    results = []
    for now, segment in enumerate(parts):
        key, seq, payload = _reassemble_key(segment, 200)
        if packed and split.encoding is Encoding.GSM7:
            header = 0
            if segment.udhi:
                header = parse_udh(segment.short_message).header_length
            payload = unpack_septets(payload, fill_bits_after(header) if header else 0)
        if segment.udhi:
            assert len(segment.short_message) <= (140 if packed else 160)
        done = reassembler.add(key, seq, payload, now=float(now))
        if done is not None:
            results.append(done)
    assert len(results) == 1 + (len(split.segments) == 1)  # a lone part "completes" twice
    assert decode(results[0].payload, split.data_coding) == expected
    assert len(reassembler) == 0


@given(st.text(alphabet="ab€", max_size=500))
def test_no_part_ends_inside_an_escape(text: str) -> None:
    encoded = encode_text(text, Encoding.GSM7)
    for segment in split_message(encoded, reference=1).segments:
        payload = (
            parse_udh(segment.short_message).payload if segment.udhi else segment.short_message
        )
        assert len(payload) <= (153 if segment.udhi else 160)
        assert decode(payload, 0).count("\ufffd") == 0


def reference_part_sizes(payload: bytes, encoding: Encoding, single: int, limit: int) -> list[int]:
    """Octets in each part, cutting character by character (the obvious, slow way)."""
    unit = 2 if encoding is Encoding.UCS2 else 1
    if len(payload) <= single * unit:
        return [len(payload)]
    sizes, size, i = [], 0, 0
    while i < len(payload):
        step = unit
        if encoding is Encoding.GSM7 and payload[i] == ESC and i + 1 < len(payload):
            step = 2
        if (
            encoding is Encoding.UCS2
            and 0xD8 <= payload[i] <= 0xDB
            and i + 2 < len(payload)
            and 0xDC <= payload[i + 2] <= 0xDF
        ):
            step = 4
        if size + step > limit * unit:
            sizes.append(size)
            size = 0
        size += step
        i += step
    sizes.append(size)
    return sizes


@given(
    st.lists(st.sampled_from([ESC, 0x61, 0x65, 0x14]), max_size=700).map(bytes),
    st.sampled_from([ConcatMethod.UDH8, ConcatMethod.UDH16]),
)
def test_gsm7_cuts_match_character_walk(payload: bytes, method: ConcatMethod) -> None:
    # Arbitrary septets from a peer, runs of ESC included.
    encoded = EncodedText.from_bytes(payload, 0)
    split = split_message(encoded, reference=1, method=method)
    sizes = [len(parse_udh(s.short_message).payload) if s.udhi else len(s.short_message)
             for s in split.segments]  # fmt: skip
    assert sizes == reference_part_sizes(payload, Encoding.GSM7, *part_limits("gsm7", method))


@given(
    st.lists(st.sampled_from(["0041", "d83d", "de00", "dbff", "dfff"]), max_size=300).map(
        lambda units: bytes.fromhex("".join(units))
    ),
    st.sampled_from([ConcatMethod.UDH8, ConcatMethod.UDH16]),
)
def test_ucs2_cuts_match_character_walk(payload: bytes, method: ConcatMethod) -> None:
    # Surrogates paired, lone, and reversed, as a peer might send them.
    encoded = EncodedText.from_bytes(payload, 8)
    split = split_message(encoded, reference=1, method=method)
    sizes = [len(parse_udh(s.short_message).payload) if s.udhi else len(s.short_message)
             for s in split.segments]  # fmt: skip
    assert sizes == reference_part_sizes(payload, Encoding.UCS2, *part_limits("ucs2", method))


@pytest.mark.parametrize(
    ("data_coding", "encoding", "units"),
    [(0, Encoding.GSM7, 4), (0x10, Encoding.GSM7, 4), (1, Encoding.BINARY, 4),
     (3, Encoding.LATIN1, 4), (8, Encoding.UCS2, 2), (0xF4, Encoding.BINARY, 4)],
)  # fmt: skip
def test_encoded_text_from_bytes(data_coding: int, encoding: Encoding, units: int) -> None:
    encoded = EncodedText.from_bytes(b"\x00a\x00b", data_coding)
    assert (encoded.encoding, encoded.data_coding, encoded.units) == (encoding, data_coding, units)
    assert encoded.text is None
