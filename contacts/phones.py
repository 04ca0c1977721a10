"""Phone numbers of contacts: E.164 digits from whatever a user typed or a file held.

Stored as E.164 digits without ``+`` (as the stop list and the messages keep
them) and shown with the ``+``. A number written internationally (``+44 …``,
``0044 …``) needs no country; a local one (``07700 900123``) takes the
calling code of the user's country. Digits without ``+`` are ambiguous: with
a country given, they are read in this order, the first valid reading wins:

1. international, when they start with that country's own calling code
   (``447700900123`` for GB);
2. national with the trunk prefix (``07700900123``, ``89161234567`` for RU);
3. national without it (``2025550123`` for US);
4. international with any other calling code;
5. libphonenumber's full parse (rare, slower: the quick rules above are
   the metadata's length and pattern checks, :class:`gateway.accept.msisdn.NumberRules`).

An import normalises a million numbers, so the quick readings come first.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata

from gateway.accept.msisdn import shared_rules

_JUNK = str.maketrans("", "", " -().\t/\u00a0")
MAX_INPUT = 40  # longer than any number written with spaces and brackets


_rules = shared_rules  # one compiled set of rules per process, the Admin Panel's too


@lru_cache(maxsize=512)
def _region(country: str) -> tuple[str, str] | None:
    """(calling code, trunk prefix) of an ISO 3166 country, None when unknown."""
    meta = PhoneMetadata.metadata_for_region(country.upper())
    if meta is None or not meta.country_code:
        return None
    return str(meta.country_code), meta.national_prefix or ""


def countries() -> list[str]:
    """The ISO country codes numbers can be read for, sorted."""
    return sorted(phonenumbers.SUPPORTED_REGIONS)


def normalise(raw: object, country: str | None = None) -> str | None:
    """The E.164 digits (without ``+``) of ``raw``, or None when it is no valid number."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)  # a spreadsheet cell holding the number as a number
    elif isinstance(raw, float) and raw.is_integer():
        raw = str(int(raw))
    if not isinstance(raw, str) or not raw or len(raw) > MAX_INPUT:
        return None
    text = raw.strip().translate(_JUNK)
    rules = _rules()
    if text.startswith("+"):
        digits = text[1:]
        return rules.normalise(digits) if digits.isdigit() and digits.isascii() else None
    if not text.isdigit() or not text.isascii():
        return None
    if text.startswith("00"):
        return rules.normalise(text[2:])
    region = _region(country) if country else None
    if region is None:
        return rules.normalise(text)
    code, trunk = region
    if text.startswith(code) and (found := rules.normalise(text)):
        return found
    if trunk and text.startswith(trunk) and (found := rules.normalise(code + text[len(trunk):])):
        return found
    if found := rules.normalise(code + text):
        return found
    if found := rules.normalise(text):
        return found
    return _parse(text, country)


def _parse(text: str, country: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, (country or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def display(digits: str) -> str:
    """How a stored number is shown: ``+`` and the digits."""
    return "+" + digits if digits else ""


def prefix_filter(text: str) -> str | None:
    """The digits a phone filter typed by a user starts with (``+44 77`` → ``4477``);
    "" for no filter, None when it holds something else than a number (matches nothing)."""
    digits = text.strip().translate(_JUNK).lstrip("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if not digits:
        return ""
    return digits if digits.isdigit() and digits.isascii() else None


def calling_code(country: str) -> str:
    """The calling code of an ISO country (``GB`` → ``44``), "" when unknown."""
    region = _region(country)
    return region[0] if region else ""
