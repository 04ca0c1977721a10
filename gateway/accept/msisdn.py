"""Destination numbers: is this an international (E.164) number, and its digits
(without '+', as Herald stores and bills them; spec §12.2 "to").

Validity follows the ``phonenumbers`` metadata: one compiled pattern per calling
code, about thirty times cheaper than ``phonenumbers.is_valid_number`` (the API
checks up to 700 numbers a request); a number the quick rule refuses gets the
full parse before it is refused."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata

E164_MAX_DIGITS = 15  # ITU-T E.164 §6.1
_JUNK = str.maketrans("", "", " -().\t/")


@dataclass(frozen=True, slots=True)
class _CallingCode:
    lengths: frozenset[int]
    pattern: re.Pattern[str]


class NumberRules:
    """The validity rules of every calling code, compiled once (build one per process)."""

    __slots__ = ("_codes", "_heads")

    def __init__(self) -> None:
        self._codes: dict[str, _CallingCode] = {}
        for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
            metas = [
                PhoneMetadata.metadata_for_nongeo_region(cc) if region == "001"
                else PhoneMetadata.metadata_for_region(region)
                for region in regions
            ]
            lengths: set[int] = set()
            patterns: list[str] = []
            for meta in metas:
                if meta is None or meta.general_desc is None:
                    continue
                desc = meta.general_desc
                if desc.national_number_pattern:
                    patterns.append(desc.national_number_pattern)
                lengths.update(desc.possible_length or ())
            if patterns:
                joined = "|".join(f"(?:{p})" for p in dict.fromkeys(patterns))
                self._codes[str(cc)] = _CallingCode(frozenset(lengths), re.compile(joined))
        # Calling codes are prefix-free (ITU-T E.164 Annex A): a number's first three digits
        # name its code, if any. One probe instead of up to three.
        self._heads: dict[str, tuple[int, _CallingCode]] = {}
        for head in (f"{i:03d}" for i in range(1000)):
            for n in (1, 2, 3):
                rule = self._codes.get(head[:n])
                if rule is not None:
                    self._heads[head] = (n, rule)
                    break

    def normalise(self, raw: str) -> str | None:
        """The E.164 digits of ``raw`` (without '+'), or None when it is not a valid number."""
        if raw.isdigit() and not raw.startswith("00"):
            digits = raw  # already bare digits: what most clients send
        else:
            digits = raw.translate(_JUNK)
            if digits.startswith("+"):
                digits = digits[1:]
            elif digits.startswith("00"):
                digits = digits[2:]  # the international call prefix most countries use
            if not digits.isdigit():
                return None
        if not 7 <= len(digits) <= E164_MAX_DIGITS or not digits.isascii():
            return None
        found = self._heads.get(digits[:3])
        if found is not None:
            n, rule = found
            national = digits[n:]
            if (not rule.lengths or len(national) in rule.lengths) and rule.pattern.fullmatch(national):
                return digits
        return _slow(digits)


@functools.cache
def shared_rules() -> NumberRules:
    """One :class:`NumberRules` for whoever needs them outside the pipeline (the Admin
    Panel), built on first use (a fraction of a second's CPU: call it from a thread)."""
    return NumberRules()


def _slow(digits: str) -> str | None:
    """The full libphonenumber parse, for what the quick rule refused.

    A few countries rewrite national numbers when parsing (Norfolk Island's
    five-digit local numbers gain a leading 3); the parse knows those rules, and
    refusals are rare, so the cost is paid only there.
    """
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
