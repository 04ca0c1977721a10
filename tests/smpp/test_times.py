"""SMPP time values (SMPP 3.4 §7.1.1): tables read both ways, refusals, round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp.times import (
    RelativeTime,
    TimeFormatError,
    format_absolute,
    format_relative,
    parse_absolute,
    parse_relative,
    parse_time,
)

NOW = datetime(2026, 1, 31, 10, 30, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# (string, the UTC instant it names, offset it is written at) — formatted back exactly.
ABSOLUTE = [
    ("240101120000000+", utc(2024, 1, 1, 12, 0, 0), timedelta(0)),
    ("240101120000004+", utc(2024, 1, 1, 11, 0, 0), timedelta(hours=1)),
    ("240101120000004-", utc(2024, 1, 1, 13, 0, 0), timedelta(hours=-1)),
    ("991231235959948+", utc(2099, 12, 31, 11, 59, 59, 900_000), timedelta(hours=12)),
    ("000101000000048-", utc(2000, 1, 1, 12, 0, 0), timedelta(hours=-12)),
    ("240229053000522+", utc(2024, 2, 29, 0, 0, 0, 500_000), timedelta(hours=5, minutes=30)),
    ("260315021500056+", utc(2026, 3, 14, 12, 15, 0), timedelta(hours=14)),
    ("261125143000003+", utc(2026, 11, 25, 13, 45, 0), timedelta(minutes=45)),
]


@pytest.mark.parametrize(("text", "instant", "offset"), ABSOLUTE, ids=[a[0] for a in ABSOLUTE])
def test_absolute_times_both_ways(text, instant, offset):
    parsed = parse_absolute(text)
    assert parsed == instant and parsed.tzinfo is UTC
    assert parse_time(text, NOW) == instant
    assert format_absolute(instant, utc_offset=offset) == text


def test_absolute_in_utc_by_default_and_tenths_truncated():
    assert format_absolute(utc(2026, 11, 25, 14, 3, 7, 987_654)) == "261125140307900+"
    at_plus_two = datetime(2026, 11, 25, 16, 3, 7, tzinfo=timezone(timedelta(hours=2)))
    assert format_absolute(at_plus_two) == "261125140307000+"


# (string, the duration it names, as counted from NOW)
RELATIVE = [
    ("000000000000000R", RelativeTime(), NOW),
    ("000001000000000R", RelativeTime(days=1), utc(2026, 2, 1, 10, 30)),
    ("000000480000000R", RelativeTime(hours=48), utc(2026, 2, 2, 10, 30)),
    ("000000001500000R", RelativeTime(minutes=15), utc(2026, 1, 31, 10, 45)),
    ("000000000099000R", RelativeTime(seconds=99), utc(2026, 1, 31, 10, 31, 39)),
    # calendar months: 31 January + 1 month is the last day of February
    ("000100000000000R", RelativeTime(months=1), utc(2026, 2, 28, 10, 30)),
    ("010000000000000R", RelativeTime(years=1), utc(2027, 1, 31, 10, 30)),
    ("001300000000000R", RelativeTime(months=13), utc(2027, 2, 28, 10, 30)),
    ("020610233429000R", RelativeTime(2, 6, 10, 23, 34, 29), utc(2028, 8, 11, 10, 4, 29)),
]


@pytest.mark.parametrize(("text", "relative", "instant"), RELATIVE, ids=[r[0] for r in RELATIVE])
def test_relative_times(text, relative, instant):
    assert parse_relative(text) == relative
    assert parse_time(text, NOW) == instant
    assert relative.after(NOW) == instant


def test_relative_counts_from_an_aware_now_in_any_zone():
    now_plus_three = NOW.astimezone(timezone(timedelta(hours=3)))
    assert parse_time("000000010000000R", now_plus_three) == utc(2026, 1, 31, 11, 30)
    with pytest.raises(ValueError, match="aware"):
        parse_time("000000010000000R", NOW.replace(tzinfo=None))


FORMAT_RELATIVE = [
    (timedelta(0), "000000000000000R"),
    (timedelta(seconds=59, microseconds=999_999), "000000000059000R"),
    (timedelta(hours=25, minutes=1, seconds=2), "000001010102000R"),
    (timedelta(days=99, hours=23, minutes=59, seconds=59), "000099235959000R"),
]


@pytest.mark.parametrize(("delta", "text"), FORMAT_RELATIVE)
def test_format_relative(delta, text):
    assert format_relative(delta) == text
    assert parse_time(text, NOW) == NOW + timedelta(seconds=int(delta.total_seconds()))


def test_null_means_no_time():
    assert parse_time("", NOW) is None


BAD = [
    ("1", "16 characters"),
    ("24010112000000+", "16 characters"),
    ("2401011200000000+", "16 characters"),
    ("2401011200000 0+", "digits"),
    ("24-101120000000+", "digits"),
    ("240101120000000Z", "ends with"),
    ("240101120000000 ", "ends with"),
    ("241301120000000+", "not a date"),     # month 13
    ("240230120000000+", "not a date"),     # 30 February
    ("230229120000000+", "not a date"),     # 2023 is not a leap year
    ("240100120000000+", "not a date"),     # day 0
    ("240101240000000+", "not a date"),     # hour 24
    ("240101126000000+", "not a date"),     # minute 60
    ("240101120060000+", "not a date"),     # second 60
    ("240101120000057+", "out of range"),   # UTC+14:15
    ("240101120000099-", "out of range"),
    ("000001000000100R", "'000'"),          # tenths in a relative time
    ("000001000000004R", "'000'"),          # an offset in a relative time
    ("00000100000000 R", "digits"),
    ("00000100000000R", "16 characters"),
]


@pytest.mark.parametrize(("text", "why"), BAD, ids=[b[0] for b in BAD])
def test_invalid_strings_are_refused(text, why):
    with pytest.raises(TimeFormatError, match=why):
        parse_time(text, NOW)


def test_time_format_error_is_a_value_error():
    assert issubclass(TimeFormatError, ValueError)


@pytest.mark.parametrize(("when", "offset", "why"), [
    (utc(1999, 12, 31, 23), timedelta(0), "two-digit year"),
    (utc(2099, 12, 31, 23), timedelta(hours=2), "two-digit year"),
    (utc(2026, 1, 1), timedelta(minutes=10), "quarter hours"),
    (utc(2026, 1, 1), timedelta(hours=15), "quarter hours"),
    (datetime(2026, 1, 1), timedelta(0), "aware"),
])
def test_format_absolute_refuses_what_it_cannot_write(when, offset, why):
    with pytest.raises(ValueError, match=why):
        format_absolute(when, utc_offset=offset)


@pytest.mark.parametrize("delta", [timedelta(seconds=-1), timedelta(days=100)])
def test_format_relative_refuses_what_it_cannot_write(delta):
    with pytest.raises(ValueError):
        format_relative(delta)


@given(
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30),
                 timezones=st.just(UTC)),
    st.integers(min_value=-56, max_value=56),
)
def test_absolute_round_trip(when, quarters):
    when = when.replace(microsecond=when.microsecond // 100_000 * 100_000)
    text = format_absolute(when, utc_offset=quarters * timedelta(minutes=15))
    assert len(text) == 16
    assert parse_absolute(text) == when


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=99, hours=23, minutes=59,
                                                                  seconds=59)))
def test_relative_round_trip(delta):
    whole = timedelta(seconds=int(delta.total_seconds()))
    assert parse_time(format_relative(delta), NOW) == NOW + whole
