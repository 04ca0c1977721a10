"""SMPP time values: ``schedule_delivery_time``, ``validity_period``, ``final_date``.

SMPP 3.4 §7.1.1 writes a time as a C-Octet String that is either empty (NULL:
"immediately" for a schedule, "the SMSC default" for a validity period) or
exactly 16 characters in one of two forms:

* **absolute**, ``YYMMDDhhmmsstnnp`` (§7.1.1.1): the local time of the writer
  (two-digit year, month, day, hour, minute, second, tenth of a second), then
  ``nn``, the difference between that local time and UTC in quarter hours, and
  ``p``: ``+`` when the local time is ahead of UTC, ``-`` when it is behind.
  ``240101120000004+`` is 2024-01-01 12:00:00.0 at UTC+01:00, i.e. 11:00 UTC.
* **relative**, ``YYMMDDhhmmss000R`` (§7.1.1.2): years, months, days, hours,
  minutes and seconds from the reader's current time. ``000001000000000R`` is
  one day from now.

Choices where the specification leaves room, so both sides of Herald agree:

* The two-digit year is read as 20YY.
* ``nn`` is accepted up to 56 (UTC±14:00): §7.1.1.1 says 00-48, but UTC+13:00 and
  UTC+14:00 zones exist and their SMSCs write them.
* A relative time's fields are counts, not clock readings: ``000000480000000R``
  is 48 hours. Years and months are calendar arithmetic on the current UTC date
  (one month from 31 January is the last day of February); the rest is a fixed
  duration. Its ``tnn`` must be ``000``, as §7.1.1.2 writes it.

Everything here is pure: the current time is passed in.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from smpp.errors import SmppError

__all__ = [
    "MAX_OFFSET_QUARTERS",
    "RelativeTime",
    "TimeFormatError",
    "format_absolute",
    "format_relative",
    "parse_absolute",
    "parse_relative",
    "parse_time",
]

TIME_LENGTH = 16
MAX_OFFSET_QUARTERS = 56  # UTC±14:00 (see the module doc: 48 in §7.1.1.1)
_QUARTER = timedelta(minutes=15)
_DIGITS = frozenset("0123456789")


class TimeFormatError(SmppError, ValueError):
    """A string that is not an SMPP time (SMPP 3.4 §7.1.1).

    The caller picks the ``command_status`` from the field the string came in:
    ``ESME_RINVSCHED`` for ``schedule_delivery_time``, ``ESME_RINVEXPIRY`` for
    ``validity_period`` (SMPP 3.4 §5.1.3).
    """


@dataclass(frozen=True, slots=True)
class RelativeTime:
    """A relative SMPP time (§7.1.1.2): how far after "now" it points."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def after(self, now: datetime) -> datetime:
        """The instant this relative time names, counted from ``now`` (aware), in UTC."""
        start = _utc(now, "now")
        months = start.month - 1 + self.months + 12 * self.years
        year, month = start.year + months // 12, months % 12 + 1
        if year > datetime.max.year:
            raise TimeFormatError(f"{self} from {now.isoformat()} is past the year {datetime.max.year}")
        # Calendar months: the day is kept, or the month's last day when it has fewer.
        day = min(start.day, calendar.monthrange(year, month)[1])
        moved = start.replace(year=year, month=month, day=day)
        try:
            return moved + timedelta(days=self.days, hours=self.hours, minutes=self.minutes,
                                     seconds=self.seconds)
        except OverflowError:
            raise TimeFormatError(f"{self} from {now.isoformat()} is out of range") from None


def _utc(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {when!r}")
    return when.astimezone(UTC)


def _shape(value: str) -> None:
    if len(value) != TIME_LENGTH:
        raise TimeFormatError(f"an SMPP time has {TIME_LENGTH} characters, not {len(value)}: {value!r}")
    if not _DIGITS.issuperset(value[:15]):
        raise TimeFormatError(f"an SMPP time has digits before its last character: {value!r}")


def parse_absolute(value: str) -> datetime:
    """The instant an absolute time ``YYMMDDhhmmsstnnp`` names, as an aware UTC datetime."""
    _shape(value)
    sign = value[15]
    if sign not in "+-":
        raise TimeFormatError(f"an absolute SMPP time ends with '+' or '-': {value!r}")
    quarters = int(value[13:15])
    if quarters > MAX_OFFSET_QUARTERS:
        raise TimeFormatError(f"UTC offset of {quarters} quarter hours is out of range: {value!r}")
    offset = quarters * _QUARTER
    try:
        local = datetime(2000 + int(value[0:2]), int(value[2:4]), int(value[4:6]),
                         int(value[6:8]), int(value[8:10]), int(value[10:12]),
                         int(value[12]) * 100_000,
                         tzinfo=timezone(offset if sign == "+" else -offset))
    except ValueError as err:  # month 13, 30 February, hour 24...
        raise TimeFormatError(f"not a date and time: {value!r} ({err})") from None
    return local.astimezone(UTC)


def parse_relative(value: str) -> RelativeTime:
    """The duration a relative time ``YYMMDDhhmmss000R`` names."""
    _shape(value)
    if value[15] != "R":
        raise TimeFormatError(f"a relative SMPP time ends with 'R': {value!r}")
    if value[12:15] != "000":
        raise TimeFormatError(f"a relative SMPP time has '000' before its 'R': {value!r}")
    counts = [int(value[i:i + 2]) for i in range(0, 12, 2)]
    return RelativeTime(*counts)


def parse_time(value: str, now: datetime) -> datetime | None:
    """The instant an SMPP time names (relative ones counted from ``now``); None when empty.

    Raises :class:`TimeFormatError` for anything that is neither NULL nor one of
    the two 16-character forms. ``now`` must be aware.
    """
    if value == "":
        return None
    if value[-1:] == "R":
        return parse_relative(value).after(now)
    return parse_absolute(value)


def format_absolute(when: datetime, *, utc_offset: timedelta = timedelta(0)) -> str:
    """``when`` (aware) as an absolute SMPP time, written in local time at ``utc_offset``.

    Tenths of a second are truncated. ``utc_offset`` must be a whole number of
    quarter hours within ±14:00; the local year must be 2000-2099.
    """
    quarters, rest = divmod(utc_offset, _QUARTER)
    if rest or abs(quarters) > MAX_OFFSET_QUARTERS:
        raise ValueError(f"an SMPP UTC offset is whole quarter hours up to 14:00, not {utc_offset}")
    local = _utc(when, "when").astimezone(timezone(utc_offset))
    if not 2000 <= local.year <= 2099:
        raise ValueError(f"an SMPP time has a two-digit year; {local.year} cannot be written")
    sign = "-" if quarters < 0 else "+"
    return (local.strftime("%y%m%d%H%M%S") + str(local.microsecond // 100_000)
            + f"{abs(quarters):02d}{sign}")


def format_relative(delta: timedelta) -> str:
    """``delta`` as a relative SMPP time in days, hours, minutes and seconds.

    Fractions of a second are truncated. Years and months are never written
    (their length depends on the reader's calendar), so ``delta`` must be under
    100 days and not negative.
    """
    if delta < timedelta(0):
        raise ValueError(f"a relative SMPP time is not negative: {delta}")
    if delta >= timedelta(days=100):
        raise ValueError(f"a relative SMPP time is written here in days, at most 99: {delta}")
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"0000{delta.days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
