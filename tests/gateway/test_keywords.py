"""MO keyword matching: a table of messages against one set of templates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.errors import Invalid
from gateway.report.keywords import (
    Action,
    BuiltinKeywords,
    ReplyTemplate,
    match_reply,
    parse_keywords,
    words,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)

TEMPLATES = [
    ReplyTemplate(1, parse_keywords("info, more info"), "Info reply", 5, T0),
    ReplyTemplate(2, parse_keywords("price"), "Old price reply", 5, T0),
    ReplyTemplate(3, parse_keywords("PRICE, prices"), "New price reply", 5, T1),  # newer
    ReplyTemplate(4, parse_keywords("price list"), "Price list reply", 9, T0),   # higher priority
    ReplyTemplate(5, parse_keywords("leave"), "Bye", 3, T0, action=Action.UNSUBSCRIBE,
                  unsubscribe_group_id=77),
    ReplyTemplate(6, parse_keywords("join"), "Welcome", 3, T0, action=Action.SUBSCRIBE,
                  subscribe_group_id=88, unsubscribe_group_id=99),
    ReplyTemplate(7, parse_keywords("stop"), "You are unsubscribed", 1, T0),  # no own action
    ReplyTemplate(8, parse_keywords("привет"), "Здравствуйте", 5, T0),
    ReplyTemplate(9, parse_keywords("promo"), "Viber promo", 5, T0, channel="viber"),
]

# text -> (template id, reply, action, group, builtin_action) or None
CASES = [
    ("info", (1, "Info reply", Action.NONE, None, False)),
    ("  INFO!!", (1, "Info reply", Action.NONE, None, False)),
    ("More   info, please", (1, "Info reply", Action.NONE, None, False)),
    ("information", None),                       # whole words only
    ("please send info", None),                  # keyword must lead the message
    ("price", (3, "New price reply", Action.NONE, None, False)),          # newest on a tie
    ("Price list now", (4, "Price list reply", Action.NONE, None, False)),  # priority wins
    ("leave", (5, "Bye", Action.UNSUBSCRIBE, 77, False)),
    ("Join us", (6, "Welcome", Action.SUBSCRIBE, 88, False)),
    ("STOP", (7, "You are unsubscribed", Action.UNSUBSCRIBE, None, True)),  # built-in action kept
    ("stop it", (7, "You are unsubscribed", Action.NONE, None, False)),   # not a bare STOP
    ("unsubscribe.", (None, None, Action.UNSUBSCRIBE, None, True)),       # built-in, no template
    ("Start", (None, None, Action.SUBSCRIBE, None, True)),
    ("end of offer?", None),                     # built-ins match only the whole message
    ("ПРИВЕТ", (8, "Здравствуйте", Action.NONE, None, False)),            # Unicode case folding
    ("promo", None),                             # Viber template, SMS message
    ("", None),
    ("!!!", None),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_match_reply_table(text, expected):
    decision = match_reply(TEMPLATES, text, channel="sms")
    if expected is None:
        assert decision is None
        return
    got = (decision.template_id, decision.reply_text, decision.action, decision.group_id,
           decision.builtin_action)
    assert got == expected


def test_channel_filter_and_anywhere_mode():
    assert match_reply(TEMPLATES, "promo", channel="viber").template_id == 9
    assert match_reply(TEMPLATES, "promo").template_id == 9   # no channel given: all templates
    d = match_reply(TEMPLATES, "please send more info", anywhere=True)
    assert d.template_id == 1 and d.keyword == "more info"


def test_partner_builtins_replace_defaults_or_are_disabled():
    own = BuiltinKeywords.from_lists(unsubscribe=["BASTA"], subscribe=["VUELVO"])
    assert match_reply([], "basta", builtins=own).action is Action.UNSUBSCRIBE
    assert match_reply([], "Vuelvo!", builtins=own).action is Action.SUBSCRIBE
    assert match_reply([], "stop", builtins=own) is None
    assert match_reply([], "stop", builtins=None) is None


def test_parse_keywords_and_validation():
    assert parse_keywords(" Stop, more  Info ,stop,, ") == ("stop", "more info")
    assert words("Hi, THERE—you!") == ("hi", "there", "you")
    with pytest.raises(Invalid) as err:
        ReplyTemplate(1, ("x",), "r", 11, T0)
    assert err.value.field == "priority"
    with pytest.raises(Invalid):
        ReplyTemplate(1, parse_keywords(" , "), "r", 5, T0)
