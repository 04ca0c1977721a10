"""Pure rules of contacts: phone numbers, field names and values, export cells."""

from __future__ import annotations

from datetime import date, datetime

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import Invalid
from contacts import export, fields, phones


@pytest.mark.parametrize(("raw", "country", "expected"), [
    ("+44 7700 900123", None, "447700900123"),
    ("0044 7700 900123", None, "447700900123"),
    ("447700900123", None, "447700900123"),
    ("447700900123", "GB", "447700900123"),      # its own calling code first
    ("07700 900123", "GB", "447700900123"),      # trunk prefix 0
    ("07700 900123", None, None),                 # local, and no country to read it with
    ("8 (916) 123-45-67", "RU", "79161234567"),   # trunk prefix 8
    ("(202) 555-0123", "US", "12025550123"),      # national without trunk prefix
    ("+1 202 555 0123", "RU", "12025550123"),
    ("905321234567", "TR", "905321234567"),
    ("0532 123 45 67", "TR", "905321234567"),
    ("612345678", "ES", "34612345678"),
    (447700900123, "GB", "447700900123"),         # a spreadsheet number
    (447700900123.0, None, "447700900123"),
    ("+44 7700 9001", None, None),
    ("abc", "GB", None),
    ("", "GB", None),
    ("\x00447700900123", None, None),
    ("4" * 41, None, None),
    ("+٤٤٧٧٠٠٩٠٠١٢٣", None, None),               # digits, but not ASCII ones
    (True, None, None),
])
def test_normalise(raw, country, expected):
    assert phones.normalise(raw, country) == expected


REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS
                 if phonenumbers.example_number_for_type(r, phonenumbers.PhoneNumberType.MOBILE))


@given(st.sampled_from(REGIONS))
def test_every_country_reads_its_numbers_written_both_ways(region):
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert phones.normalise(international) == digits
    assert phones.normalise(national, region) == digits


def test_prefix_filter():
    assert phones.prefix_filter(" +44 77 ") == "4477"
    assert phones.prefix_filter("0044") == "44"
    assert phones.prefix_filter("") == ""
    assert phones.prefix_filter("abc") is None


@pytest.mark.parametrize(("name", "variable"), [
    ("Loyalty Level", "loyaltylevel"), ("Город", "город"), ("İl", "i̇l".replace("\u0307", "")),
    ("  VIP-status! 2 ", "vipstatus2"), ("Código postal", "códigopostal"),
])
def test_derive_variable(name, variable):
    assert fields.derive_variable(name) == variable


def test_derive_variable_needs_a_letter():
    with pytest.raises(Invalid):
        fields.derive_variable("!!! ---")


@pytest.mark.parametrize(("data_type", "raw", "expected"), [
    ("text", "  Paris ", "Paris"), ("text", "", None), ("text", 12.0, "12"),
    ("number", "1 234,5", 1234.5), ("number", "42", 42), ("number", 7.0, 7), ("number", "", None),
    ("date", "2001-05-17", "2001-05-17"), ("date", "17.05.2001", "2001-05-17"),
    ("date", datetime(2001, 5, 17, 0, 0), "2001-05-17"), ("date", "2001-05-17 00:00:00", "2001-05-17"),
    ("boolean", "Yes", True), ("boolean", "нет", False), ("boolean", 1, True), ("boolean", "", None),
])
def test_parse_value(data_type, raw, expected):
    assert fields.parse_value(data_type, raw) == expected


@pytest.mark.parametrize(("data_type", "raw", "reason"), [
    ("number", "12abc", "bad_number"), ("number", "NaN", "bad_number"), ("number", float("inf"), "bad_number"),
    ("number", True, "bad_number"), ("date", "31/31/1999", "bad_date"), ("date", "yesterday", "bad_date"),
    ("boolean", "maybe", "bad_boolean"), ("text", "x" * 501, "too_long"),
])
def test_parse_value_refuses(data_type, raw, reason):
    with pytest.raises(ValueError, match=reason):
        fields.parse_value(data_type, raw)


def test_gender_words_in_four_languages():
    assert [fields.parse_gender(w) for w in ("F", "мужской", "Mujer", "erkek", "")] == [
        "female", "male", "female", "male", None]
    with pytest.raises(ValueError):
        fields.parse_gender("x")


@pytest.mark.parametrize(("value", "safe"), [
    ('=HYPERLINK("http://evil.test","x")', '\'=HYPERLINK("http://evil.test","x")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("+447700900123", "+447700900123"), ("-12.5", "-12.5"), ("Ada", "Ada"),
    (None, ""), (12, "12"),
])
def test_safe_cell(value, safe):
    assert export.safe_cell(value) == safe


def test_date_parse_of_builtin_birth_date():
    assert fields.parse_date("2001-5-7") == date(2001, 5, 7)
