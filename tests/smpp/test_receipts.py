"""Delivery receipts: real-world text variants, states, network error codes, message ids."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp.pdu import MessageState
from smpp.receipts import (
    DeliveryReceipt,
    IdFormat,
    NetworkType,
    build_receipt,
    compute_message_id_keys,
    is_final,
    message_id_key,
    message_id_keys,
    message_ids_match,
    normalise_message_id,
    parse_receipt,
    parse_receipt_date,
    receipt_status,
    stat_word,
    state_from_stat,
    state_from_tlv,
)

D1 = datetime(2023, 1, 1, 12, 30)
D2 = datetime(2023, 1, 1, 12, 31)

# receipt text, id, state, sub, dlvrd, submit date, done date, err, text
VARIANTS = [
    (  # SMPP 3.4 Appendix B, as written
        "id:1234567890 sub:001 dlvrd:001 submit date:2301011230 done date:2301011231"
        " stat:DELIVRD err:000 text:Hello world",
        "1234567890", MessageState.DELIVERED, 1, 1, D1, D2, "000", "Hello world",
    ),
    (  # seconds in the dates
        "id:abc123 sub:001 dlvrd:001 submit date:230101123045 done date:230101123150"
        " stat:DELIVRD err:000 text:",
        "abc123", MessageState.DELIVERED, 1, 1, D1.replace(second=45),
        D2.replace(second=50), "000", "",
    ),
    (  # keys in capitals, Text with a capital
        "ID:0A1B SUB:001 DLVRD:000 SUBMIT DATE:2301011230 DONE DATE:2301011231 STAT:UNDELIV"
        " ERR:001 Text:x",
        "0A1B", MessageState.UNDELIVERABLE, 1, 0, D1, D2, "001", "x",
    ),
    (  # underscores, no text field
        "id:77 sub:001 dlvrd:001 submit_date:2301011230 done_date:2301011231 stat:DELIVRD err:0",
        "77", MessageState.DELIVERED, 1, 1, D1, D2, "0", None,
    ),
    (  # glued keys and a four-digit year
        "id:77 submitdate:20230101123000 donedate:20230101123100 stat:EXPIRED",
        "77", MessageState.EXPIRED, None, None, D1, D2, None, None,
    ),
    (  # most fields missing
        "id:42 stat:ENROUTE",
        "42", MessageState.ENROUTE, None, None, None, None, None, None,
    ),
    (  # spaces around everything
        "id: 42  sub: 001  dlvrd: 000  submit date: 2301011230  done date: 2301011231 "
        " stat: REJECTD  err: 0x0b  text: ",
        "42", MessageState.REJECTED, 1, 0, D1, D2, "0x0b", "",
    ),
    (  # the text holds colons and key-like words; it runs to the end
        "id:5 sub:001 dlvrd:001 submit date:2301011230 done date:2301011231 stat:DELIVRD"
        " err:000 text:Meet at 10:30 id:fake stat:EXPIRED",
        "5", MessageState.DELIVERED, 1, 1, D1, D2, "000", "Meet at 10:30 id:fake stat:EXPIRED",
    ),
    (  # full words for the state, "status" for the key
        "id:9 status:delivered err:000",
        "9", MessageState.DELIVERED, None, None, None, None, "000", None,
    ),
    (  # a state nobody defined, an impossible date
        "id:9 submit date:2313011230 stat:WHATEVER",
        "9", MessageState.UNKNOWN, None, None, None, None, None, None,
    ),
    (  # fields in another order
        "stat:ACCEPTD id:abc err:000",
        "abc", MessageState.ACCEPTED, None, None, None, None, "000", None,
    ),
    (  # no id at all, still a receipt
        "sub:001 dlvrd:000 stat:DELETED err:000",
        None, MessageState.DELETED, 1, 0, None, None, "000", None,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message_id", "state", "sub", "dlvrd", "submit", "done", "err", "body"), VARIANTS
)
def test_parse_real_world_variants(
    text: str,
    message_id: str | None,
    state: MessageState,
    sub: int | None,
    dlvrd: int | None,
    submit: datetime | None,
    done: datetime | None,
    err: str | None,
    body: str | None,
) -> None:
    receipt = parse_receipt(text)
    assert receipt is not None
    assert receipt.message_id == message_id
    assert receipt.state is state
    assert (receipt.submitted, receipt.delivered) == (sub, dlvrd)
    assert (receipt.submit_date, receipt.done_date) == (submit, done)
    assert receipt.error == err
    assert receipt.text == body


def test_parse_bytes_and_raw_fields() -> None:
    receipt = parse_receipt(b"id:0001 stat:UNKNOWN err:\xff text:caf\xe9\x00")
    assert receipt is not None
    assert receipt.message_id == "0001" and receipt.state is MessageState.UNKNOWN
    assert receipt.text == "café"
    assert dict(receipt.fields)["stat"] == "UNKNOWN"
    odd = parse_receipt("id:9 stat:WHATEVER")
    assert odd is not None and dict(odd.fields)["stat"] == "WHATEVER"


@pytest.mark.parametrize("text", ["", "hello world", "Your code is 1234", "subid:1", "x:y"])
def test_not_a_receipt(text: str) -> None:
    assert parse_receipt(text) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2301011230", D1), ("230101123000", D1), ("20230101123000", D1), ("23 0101 1230", D1),
     ("", None), (None, None), ("230101", None), ("23010112301", None), ("abcdefghij", None),
     ("2302301230", None), ("6901011230", datetime(2069, 1, 1, 12, 30)), ("٢٣٠١٠١١٢٣٠", None)],
)  # fmt: skip
def test_parse_receipt_date(value: str | None, expected: datetime | None) -> None:
    assert parse_receipt_date(value) == expected


def test_build_receipt_format() -> None:
    text = build_receipt(
        "1a2b",
        MessageState.DELIVERED,
        submit_date=D1,
        done_date=D2,
        text="A long message text here",
    )
    assert text == (
        "id:1a2b sub:001 dlvrd:001 submit date:2301011230 done date:2301011231"
        " stat:DELIVRD err:000 text:A long message text "
    )
    failed = build_receipt(
        "9", MessageState.UNDELIVERABLE, submit_date=D1, done_date=D2, error=11, seconds=True
    )
    assert "dlvrd:000" in failed and "err:011" in failed and "submit date:230101123000" in failed


STATES = st.sampled_from(list(MessageState))
DATES = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59))


@given(
    st.text(alphabet="0123456789abcdefABCDEF-", min_size=1, max_size=40),
    STATES,
    DATES,
    DATES,
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 999),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30),
    st.booleans(),
)
def test_build_parse_round_trip(
    message_id: str,
    state: MessageState,
    submit: datetime,
    done: datetime,
    sub: int,
    dlvrd: int,
    err: int,
    text: str,
    seconds: bool,
) -> None:
    built = build_receipt(
        message_id,
        state,
        submit_date=submit,
        done_date=done,
        submitted=sub,
        delivered=dlvrd,
        error=err,
        text=text,
        seconds=seconds,
    )
    parsed = parse_receipt(built)
    cut = {"microsecond": 0} if seconds else {"second": 0, "microsecond": 0}
    assert parsed == DeliveryReceipt(
        message_id=message_id,
        state=state,
        submitted=sub,
        delivered=dlvrd,
        submit_date=submit.replace(**cut),
        done_date=done.replace(**cut),
        error=f"{err:03d}",
        text=text[:20].strip(),
        fields=parsed.fields if parsed else (),
    )


# --- states and TLVs -----------------------------------------------------------------------

STAT_WORDS = [
    ("DELIVRD", MessageState.DELIVERED, 2),
    ("EXPIRED", MessageState.EXPIRED, 3),
    ("DELETED", MessageState.DELETED, 4),
    ("UNDELIV", MessageState.UNDELIVERABLE, 5),
    ("ACCEPTD", MessageState.ACCEPTED, 6),
    ("UNKNOWN", MessageState.UNKNOWN, 7),
    ("REJECTD", MessageState.REJECTED, 8),
    ("ENROUTE", MessageState.ENROUTE, 1),
]


@pytest.mark.parametrize(("word", "state", "tlv"), STAT_WORDS)
def test_stat_words_and_tlv_values_meet_in_one_enum(
    word: str, state: MessageState, tlv: int
) -> None:
    assert state_from_stat(word) is state
    assert state_from_stat(f" {word.lower()} ") is state
    assert state_from_tlv(tlv) is state
    assert state_from_tlv(bytes([tlv])) is state
    assert stat_word(state) == word
    assert int(state) == tlv


def test_state_edges() -> None:
    assert state_from_tlv(0) is MessageState.UNKNOWN  # SMPP 5.0 SCHEDULED
    assert state_from_tlv(9) is MessageState.UNKNOWN  # SMPP 5.0 SKIPPED
    assert state_from_tlv(200) is MessageState.UNKNOWN
    assert state_from_tlv(b"") is MessageState.UNKNOWN
    assert state_from_tlv(b"\x02\x00") is MessageState.UNKNOWN
    assert state_from_stat(None) is MessageState.UNKNOWN
    assert state_from_stat("UNDELIVERED") is MessageState.UNDELIVERABLE
    assert state_from_stat("FAILED") is MessageState.UNDELIVERABLE
    assert not is_final(MessageState.ENROUTE)
    assert all(is_final(s) for s in MessageState if s is not MessageState.ENROUTE)


def test_network_types() -> None:
    # SMPP 3.4 §5.3.2.31
    assert [t.value for t in NetworkType] == list(range(1, 9))
    assert NetworkType.GSM == 3 and NetworkType.SMPP == 7 and NetworkType.MESSAGE_CENTER == 8


# --- message ids ---------------------------------------------------------------------------

NORMAL_FORMS = [
    ("  0A1B  ", "a1b"),
    ("ABC-def", "abc-def"),
    ("000123", "123"),
    ("0000", "0"),
    ("12345\x00", "12345"),
    ("00xyz", "00xyz"),  # not a number: zeros kept
    ("", ""),
]


@pytest.mark.parametrize(("raw", "normal"), NORMAL_FORMS)
def test_normalise_message_id(raw: str, normal: str) -> None:
    assert normalise_message_id(raw) == normal


ID_MATCHES = [
    ("0A1B", "a1b", True),  # case and leading zeros
    ("255", "FF", True),  # decimal in the receipt, hex in the response
    ("ff", "255", True),
    ("00ff", "0255", True),
    ("10", "10", True),
    ("10", "0a", True),  # decimal ten, hex ten
    ("10", "16", True),  # the ambiguous reading: hex "10" is sixteen
    ("10", "11", False),
    ("a", "b", False),
    ("abc-1", "ABC-1", True),
    ("abc-1", "abc-2", False),
    ("g1", "G01", False),  # not numbers: compared as text
    ("#12", "12", False),
    ("", "", False),
    ("1" * 70, "1" * 70, True),  # too long to be read as a number, equal as text
    ("1" * 70, "0" + "1" * 70, True),  # leading zeros of hex-digit ids always go
]


@pytest.mark.parametrize(("a", "b", "match"), ID_MATCHES)
def test_message_ids_match(a: str, b: str, match: bool) -> None:
    assert message_ids_match(a, b) is match
    assert message_ids_match(b, a) is match


def test_message_id_keys() -> None:
    assert message_id_keys("10") == {"#10", "#16"}
    assert message_id_keys("10") == {"#10", "#16"}  # remembered: the same answer
    assert message_id_keys("0A") == {"#10"}
    assert message_id_keys("msg-1") == {"=msg-1"}
    assert message_id_keys(" ") == frozenset()


@given(st.one_of(st.text(max_size=70), st.integers(0, 2**80).map(str),
                 st.integers(0, 2**80).map(lambda n: format(n, "X"))))
def test_remembered_keys_are_the_computed_ones(message_id: str) -> None:
    for _ in range(2):  # first computed, then (usually) remembered
        assert message_id_keys(message_id) == compute_message_id_keys(message_id)


@given(st.integers(0, 2**64))
def test_same_number_in_either_base_matches(n: int) -> None:
    assert message_ids_match(str(n), format(n, "X"))
    assert message_ids_match(str(n), "00" + format(n, "x"))


@pytest.mark.parametrize(
    ("raw", "id_format", "key"),
    [("0A", IdFormat.HEX, "#10"), ("010", "decimal", "#10"), ("10", "hex", "#16"),
     ("Msg-1", "text", "=msg-1")],
)  # fmt: skip
def test_message_id_key_with_known_format(raw: str, id_format: str, key: str) -> None:
    assert message_id_key(raw, id_format) == key


def test_message_id_key_refuses_non_numbers() -> None:
    with pytest.raises(ValueError):
        message_id_key("0A", IdFormat.DECIMAL)
    with pytest.raises(ValueError):
        message_id_key("xyz", IdFormat.HEX)


_STATUS_SAMPLES = [
    "id:0a1b2c3d4e sub:001 dlvrd:001 submit date:2611251420 done date:2611251421"
    " stat:DELIVRD err:000 text:Hello id:9 stat:UNDELIV",
    "id:77 sub:001 dlvrd:000 submit date:2611251420 done date:2611251421 stat:UNDELIV err:045",
    "id:77 sub:001 dlvrd:000 submit date:2611251420 done date:2611251421 stat:UNDELIV err:045 x",
    "id: 77 sub:001 dlvrd:000 submit date:2611251420 done date:2611251421 stat:expired err:1",
    "ID:ab SUB:1 DLVRD:1 SUBMIT DATE:2611251420 DONE DATE:2611251421 STAT:DELIVRD ERR:0",
    "id:ab\x00 sub:1 dlvrd:1 submit date:1 done date:1 stat:DELIVRD err:0\x00",
    "id: sub:1 dlvrd:1 submit date:1 done date:1 stat: err: text:",
    "stat:REJECTD",
    "no receipt here",
]


@pytest.mark.parametrize("text", _STATUS_SAMPLES)
def test_receipt_status_agrees_with_parse_receipt(text: str) -> None:
    parsed = parse_receipt(text)
    expected = None if parsed is None else (parsed.message_id, parsed.state, parsed.error)
    assert receipt_status(text) == expected
    assert receipt_status(text.encode("latin-1")) == expected


@given(st.text(alphabet="idsubtaerx: 0123456789DELIVRUNK\x00", max_size=120))
def test_receipt_status_agrees_on_any_text(text: str) -> None:
    parsed = parse_receipt(text)
    expected = None if parsed is None else (parsed.message_id, parsed.state, parsed.error)
    assert receipt_status(text) == expected


_piece = st.text(alphabet="abcDEF019 :\x00xt", max_size=8)


@given(_piece, _piece, _piece, _piece)
def test_receipt_status_agrees_on_common_layouts(msg_id: str, stat: str, err: str, tail: str) -> None:
    text = (f"id:{msg_id} sub:001 dlvrd:001 submit date:2611251420 done date:2611251421"
            f" stat:{stat} err:{err}{tail}")
    parsed = parse_receipt(text)
    expected = None if parsed is None else (parsed.message_id, parsed.state, parsed.error)
    assert receipt_status(text) == expected
