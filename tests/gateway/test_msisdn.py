"""NumberRules.normalise's shortcuts (bare digits, one probe by the first three digits) decide
as the plain rule does: strip the junk and the international prefix, then try the calling
codes of one, two and three digits."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accept import msisdn
from gateway.accept.msisdn import NumberRules

_RULES = NumberRules()
_CODES = [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]


def _plain(raw: str) -> str | None:
    digits = raw.translate(msisdn._JUNK)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit() or not 7 <= len(digits) <= msisdn.E164_MAX_DIGITS or not digits.isascii():
        return None
    for n in (1, 2, 3):
        rule = _RULES._codes.get(digits[:n])
        if rule is not None:
            national = digits[n:]
            if (not rule.lengths or len(national) in rule.lengths) and rule.pattern.fullmatch(national):
                return digits
            break
    return msisdn._slow(digits)


_numbers = st.builds(
    lambda prefix, code, rest, junk: prefix + code + junk + rest,
    st.sampled_from(["", "", "+", "00", "+ ", "(", "0"]),
    st.one_of(st.sampled_from(_CODES), st.text(alphabet="0123456789", max_size=3)),
    st.text(alphabet="0123456789", max_size=13),
    st.sampled_from(["", "", " ", "-", ")", ".", "/", "\t"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_numbers, st.text(alphabet="0123456789+ -()٠١٢x", max_size=18)))
def test_normalise_decides_as_the_plain_rule(raw):
    assert _RULES.normalise(raw) == _plain(raw)


def test_every_three_digit_head_finds_the_code_the_plain_rule_finds():
    for i in range(1000):
        head = f"{i:03d}"
        expected = next(((n, _RULES._codes[head[:n]]) for n in (1, 2, 3)
                         if head[:n] in _RULES._codes), None)
        assert _RULES._heads.get(head) == expected, head
