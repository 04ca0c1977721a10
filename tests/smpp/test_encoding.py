"""Alphabets: GSM 03.38 (unpacked and packed), Latin-1, UCS-2, data_coding, transliteration."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp.encoding import (
    GSM7_CHARACTERS,
    GSM7_EXTENSION_CHARACTERS,
    REPLACEMENT,
    Encoding,
    UnencodableError,
    alphabet_of,
    can_encode,
    decode,
    decode_gsm7,
    decode_gsm7_packed,
    encode,
    encode_gsm7,
    encode_gsm7_packed,
    fill_bits_after,
    flash_data_coding,
    gsm7_length,
    message_class_of,
    pack_septets,
    ucs2_length,
    unpack_septets,
)
from smpp.errors import SmppError
from smpp.pdu import DataCoding
from smpp.segments import choose_encoding
from smpp.transliteration import transliterate

GSM7_TEXT = st.text(alphabet=sorted(GSM7_CHARACTERS), max_size=400)


def reference_pack(septets: bytes, fill_bits: int) -> bytes:
    """Independent packing through a bit string, least significant bit first."""
    if not septets:
        return b""
    bits = "0" * fill_bits + "".join(format(s, "07b")[::-1] for s in septets)
    if len(bits) % 8 == 1:
        bits += format(0x0D, "07b")[::-1]  # seven spare bits hold CR
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))


# --- known encodings, both ways ---------------------------------------------------------------

UNPACKED = [
    ("@", "00"),
    ("Hello", "48656c6c6f"),
    ("£$¥èéùìòÇ", "010203040506070809"),
    ("ΔΦΓΛΩΠΨΣΘΞ", "1012131415161718191a"),
    ("ÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", "1c1d1e1f24405b5c5d5e5f607b7c7d7e7f"),
    ("\n\r", "0a0d"),
    ("€", "1b65"),
    ("^{}\\[~]|", "1b141b281b291b2f1b3c1b3d1b3e1b40"),
    ("\f", "1b0a"),
    ("a€b", "611b6562"),
]


@pytest.mark.parametrize(("text", "hexed"), UNPACKED)
def test_gsm7_unpacked_table(text: str, hexed: str) -> None:
    assert encode_gsm7(text).hex() == hexed
    assert decode_gsm7(bytes.fromhex(hexed)) == text
    assert encode(text, Encoding.GSM7) == bytes.fromhex(hexed)
    assert decode(bytes.fromhex(hexed), DataCoding.SMSC_DEFAULT) == text


PACKED = [
    # 3GPP TS 23.038 §6.1.2.1.1 examples and well-known vectors.
    ("Hello", 0, "c8329bfd06"),
    ("hellohello", 0, "e8329bfd4697d9ec37"),
    # Seven septets leave seven spare bits: they carry CR, not a zero septet.
    ("1234567", 0, "31d98c56b3dd1a"),
    ("12345678", 0, "31d98c56b3dd70"),
    # After a 6-octet UDH one fill bit aligns the text: "Hello" shifted left by one.
    ("Hello", 1, "906536fb0d"),
    ("€", 0, "9b32"),
    ("", 0, ""),
]


@pytest.mark.parametrize(("text", "fill", "hexed"), PACKED)
def test_gsm7_packed_table(text: str, fill: int, hexed: str) -> None:
    assert encode_gsm7_packed(text, fill).hex() == hexed
    assert decode_gsm7_packed(bytes.fromhex(hexed), fill) == text
    assert decode_gsm7_packed(bytes.fromhex(hexed), fill, count=gsm7_length(text)) == text


UCS2 = [
    ("A", "0041"),
    ("Привет", "041f04400438043204350442"),
    ("€", "20ac"),
    ("😀", "d83dde00"),  # U+1F600 travels as a surrogate pair
    ("a😀b", "0061d83dde000062"),
]


@pytest.mark.parametrize(("text", "hexed"), UCS2)
def test_ucs2_table(text: str, hexed: str) -> None:
    assert encode(text, Encoding.UCS2).hex() == hexed
    assert decode(bytes.fromhex(hexed), DataCoding.UCS2) == text
    assert ucs2_length(text) == len(hexed) // 4


def test_latin1_both_ways() -> None:
    assert encode("café ñ ÿ", Encoding.LATIN1).hex() == "636166e920f120ff"
    assert decode(bytes.fromhex("636166e920f120ff"), DataCoding.LATIN_1) == "café ñ ÿ"


def test_unencodable_text_is_refused() -> None:
    with pytest.raises(UnencodableError):
        encode_gsm7("Привет")
    with pytest.raises(UnencodableError):
        encode("€", Encoding.LATIN1)
    with pytest.raises(UnencodableError):
        encode("\ud83d", Encoding.UCS2)
    with pytest.raises(UnencodableError):
        gsm7_length("ç")
    assert issubclass(UnencodableError, SmppError)
    assert issubclass(UnencodableError, ValueError)
    with pytest.raises(ValueError):
        encode("x", Encoding.BINARY)


def test_extension_characters_cost_two_septets() -> None:
    assert GSM7_EXTENSION_CHARACTERS == set("^{}\\[~]|€\f")
    for ch in GSM7_EXTENSION_CHARACTERS:
        assert gsm7_length(ch) == 2
    assert gsm7_length("Hello") == 5
    assert len(GSM7_CHARACTERS) == 127 + 10  # default alphabet less ESC, plus extensions


# --- bad input decodes to replacement characters ----------------------------------------------

BAD_INPUT = [
    (b"A\x80B", DataCoding.SMSC_DEFAULT, f"A{REPLACEMENT}B"),  # not a septet
    (b"A\x1b", DataCoding.SMSC_DEFAULT, f"A{REPLACEMENT}"),  # escape with nothing after
    (b"\x1b\x41", DataCoding.SMSC_DEFAULT, "A"),  # unknown escape: default-table character
    (b"\x1b\x1b", DataCoding.SMSC_DEFAULT, " "),  # escape to a further table: a space
    (b"\x1b\xff", DataCoding.SMSC_DEFAULT, REPLACEMENT),
    (b"\x00A\x01", DataCoding.UCS2, f"A{REPLACEMENT}"),  # odd octet count
    (b"\xd8\x3d\x00A", DataCoding.UCS2, f"{REPLACEMENT}A"),  # lone high surrogate
    (b"Hi\xff", DataCoding.IA5, f"Hi{REPLACEMENT}"),
]


@pytest.mark.parametrize(("data", "data_coding", "text"), BAD_INPUT)
def test_decode_replaces_bad_input(data: bytes, data_coding: int, text: str) -> None:
    assert decode(data, data_coding) == text


@given(st.binary(max_size=300), st.integers(0, 255))
def test_decode_never_raises(data: bytes, data_coding: int) -> None:
    assert isinstance(decode(data, data_coding), str)
    assert isinstance(decode(data, data_coding, gsm7_packed=True), str)


# --- data_coding -----------------------------------------------------------------------------

ALPHABETS = [
    (0x00, Encoding.GSM7),
    (0x01, "ascii"),
    (0x02, Encoding.BINARY),
    (0x03, Encoding.LATIN1),
    (0x04, Encoding.BINARY),
    (0x05, Encoding.BINARY),  # JIS: not decoded
    (0x06, "iso8859_5"),
    (0x07, "iso8859_8"),
    (0x08, Encoding.UCS2),
    (0x0B, Encoding.GSM7),  # reserved: the SMSC default
    (0x10, Encoding.GSM7),  # class 0 (flash)
    (0x14, Encoding.BINARY),
    (0x18, Encoding.UCS2),
    (0x11, Encoding.GSM7),
    (0x30, Encoding.BINARY),  # compressed
    (0x48, Encoding.UCS2),  # automatic deletion group
    (0x90, Encoding.GSM7),  # reserved group
    (0xC0, Encoding.GSM7),
    (0xD8, Encoding.GSM7),
    (0xE0, Encoding.UCS2),
    (0xF0, Encoding.GSM7),
    (0xF4, Encoding.BINARY),
    (0xF7, Encoding.BINARY),
]


@pytest.mark.parametrize(("data_coding", "alphabet"), ALPHABETS)
def test_alphabet_of(data_coding: int, alphabet: str) -> None:
    assert alphabet_of(data_coding) == alphabet


def test_smsc_default_is_configurable() -> None:
    assert alphabet_of(0, smsc_default=Encoding.LATIN1) == Encoding.LATIN1
    assert decode(b"caf\xe9", 0, smsc_default=Encoding.LATIN1) == "café"
    assert decode(b"caf\x05", 0) == "café"


def test_national_alphabets_decode() -> None:
    assert decode("Мир".encode("iso8859_5"), DataCoding.CYRILLIC) == "Мир"
    assert decode(b"\x01\x02", DataCoding.OCTET_UNSPECIFIED) == "\x01\x02"
    assert decode(b"\x48\x65\x6c\x6c\x6f", 0x10) == "Hello"
    assert decode(b"\x00\x41", 0x18) == "A"
    assert decode(bytes.fromhex("c8329bfd06"), 0xF0, gsm7_packed=True) == "Hello"


@pytest.mark.parametrize(
    ("data_coding", "message_class"),
    [(0x00, None), (0x08, None), (0x10, 0), (0x11, 1), (0x18, 0), (0x1B, 3), (0x08 | 0x40, None),
     (0x50, 0), (0xC0, None), (0xF0, 0), (0xF2, 2), (0xF5, 1)],
)  # fmt: skip
def test_message_class_of(data_coding: int, message_class: int | None) -> None:
    assert message_class_of(data_coding) == message_class


def test_flash_data_coding() -> None:
    assert flash_data_coding(Encoding.GSM7) == 0x10
    assert flash_data_coding("ucs2") == 0x18
    assert flash_data_coding(Encoding.BINARY) == 0x14
    with pytest.raises(ValueError):
        flash_data_coding(Encoding.LATIN1)
    for dc in (0x10, 0x18, 0x14):
        assert message_class_of(dc) == 0


def test_alphabet_of_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        alphabet_of(256)


# --- packing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("udh_length", range(0, 20))
def test_fill_bits_align_text_after_udh(udh_length: int) -> None:
    fill = fill_bits_after(udh_length)
    assert 0 <= fill <= 6
    assert (udh_length * 8 + fill) % 7 == 0
    assert fill_bits_after(6) == 1 and fill_bits_after(7) == 0


@given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_pack_matches_bitstring_reference(septets: bytes, fill: int) -> None:
    packed = pack_septets(septets, fill)
    assert packed == reference_pack(septets, fill)
    expected_length = (fill + 7 * len(septets) + 7) // 8 if septets else 0
    assert len(packed) == expected_length
    assert unpack_septets(packed, fill, count=len(septets)) == septets


def test_pack_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pack_septets(b"\x80")
    with pytest.raises(ValueError):
        pack_septets(b"a", 7)
    with pytest.raises(ValueError):
        unpack_septets(b"a", -1)


# --- round trips -----------------------------------------------------------------------------


@given(GSM7_TEXT)
def test_gsm7_unpacked_round_trip(text: str) -> None:
    data = encode(text, Encoding.GSM7)
    assert len(data) == gsm7_length(text)
    assert decode(data, 0) == text


@given(GSM7_TEXT, st.integers(0, 6))
def test_gsm7_packed_round_trip(text: str, fill: int) -> None:
    data = encode_gsm7_packed(text, fill)
    assert decode_gsm7_packed(data, fill, count=gsm7_length(text)) == text
    if not text.endswith("\r"):
        # Without the septet count only a final CR on an octet boundary is ambiguous.
        assert decode_gsm7_packed(data, fill) == text


@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=300))
def test_latin1_round_trip(text: str) -> None:
    assert decode(encode(text, Encoding.LATIN1), DataCoding.LATIN_1) == text


@given(st.text(max_size=300))
def test_ucs2_round_trip(text: str) -> None:
    data = encode(text, Encoding.UCS2)
    assert len(data) == 2 * ucs2_length(text)
    assert decode(data, DataCoding.UCS2) == text
    assert decode(data, 0x18) == text


@given(st.text(max_size=100))
def test_can_encode_agrees_with_encode(text: str) -> None:
    for encoding in (Encoding.GSM7, Encoding.LATIN1, Encoding.UCS2):
        try:
            encode(text, encoding)
        except UnencodableError:
            assert not can_encode(text, encoding)
        else:
            assert can_encode(text, encoding)


# --- transliteration and the encoding chooser -------------------------------------------------

TRANSLITERATIONS = [
    ("\u2018quoted\u2019", "'quoted'"),
    ("\u201cquoted\u201d \u201elow\u201c", '"quoted" "low"'),
    ("\u00abguillemets\u00bb", '"guillemets"'),
    ("a\u2013b\u2014c\u2212d", "a-b-c-d"),
    ("wait\u2026", "wait..."),
    ("no\u00a0break\u2009thin\u202fnarrow\u3000wide\ttab", "no break thin narrow wide tab"),
    ("zero\u200bwidth\ufeff", "zerowidth"),
    ("line\u2028next", "line\nnext"),
    ("\u0391\u0398\u0397\u039d\u0391", "AΘHNA"),
    ("ça", "Ça"),
    ("Привет", "Привет"),  # no look-alike: left alone
]


@pytest.mark.parametrize(("text", "expected"), TRANSLITERATIONS)
def test_transliterate(text: str, expected: str) -> None:
    assert transliterate(text) == expected


@given(GSM7_TEXT)
def test_transliterate_leaves_gsm7_alone(text: str) -> None:
    assert transliterate(text) == text


CHOICES = [
    # text, allow_latin1, transliterate, expected encoding, expected text sent
    ("Hello", False, False, Encoding.GSM7, "Hello"),
    ("Café {}", False, False, Encoding.GSM7, "Café {}"),
    ("Olá", False, False, Encoding.UCS2, "Olá"),
    ("Olá", True, False, Encoding.LATIN1, "Olá"),
    ("Привет", True, True, Encoding.UCS2, "Привет"),
    (
        "\u201cHi\u201d \u2013 ok\u2026",
        False,
        False,
        Encoding.UCS2,
        "\u201cHi\u201d \u2013 ok\u2026",
    ),
    ("\u201cHi\u201d \u2013 ok\u2026", False, True, Encoding.GSM7, '"Hi" - ok...'),
    # Transliteration cannot make it GSM 7-bit: the text goes as written.
    ("\u201cПривет\u201d", False, True, Encoding.UCS2, "\u201cПривет\u201d"),
    ("\u201cOlá\u201d", True, True, Encoding.LATIN1, '"Olá"'),
    # Latin-1 only when it saves parts: 100 braces are 200 septets but 100 octets.
    ("{" * 100, True, False, Encoding.LATIN1, "{" * 100),
    ("{" * 10, True, False, Encoding.GSM7, "{" * 10),
    ("😀", True, True, Encoding.UCS2, "😀"),
]


@pytest.mark.parametrize(("text", "latin1", "translit", "encoding", "sent"), CHOICES)
def test_choose_encoding(
    text: str, latin1: bool, translit: bool, encoding: Encoding, sent: str
) -> None:
    chosen = choose_encoding(text, allow_latin1=latin1, transliterate=translit)
    assert chosen.encoding is encoding
    assert chosen.text == sent
    assert decode(chosen.payload, chosen.data_coding) == sent


def test_choose_encoding_results() -> None:
    gsm = choose_encoding("a€")
    assert (gsm.data_coding, gsm.payload, gsm.units) == (0, b"a\x1b\x65", 3)
    ucs = choose_encoding("a😀")
    assert (ucs.data_coding, ucs.payload.hex(), ucs.units) == (8, "0061d83dde00", 3)
    latin = choose_encoding("á", allow_latin1=True)
    assert (latin.data_coding, latin.payload, latin.units) == (3, b"\xe1", 1)


def test_flash_never_picks_latin1() -> None:
    assert choose_encoding("Olá", allow_latin1=True, flash=True).data_coding == 0x18
    assert choose_encoding("Hello", flash=True).data_coding == 0x10
