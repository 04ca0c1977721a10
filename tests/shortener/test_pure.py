"""The shortener's pure parts: codes, original URLs, the link in a message, user agents, periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import Invalid
from shortener import codes, periods, text, urls, useragents
from smpp.encoding import gsm7_length, is_gsm7

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0.0.0 Mobile Safari/537.36")


def test_codes_use_the_stated_alphabet_and_length():
    made = codes.new_codes(500)
    assert len(set(made)) == 500
    for code in made:
        assert len(code) == codes.CODE_LENGTH == 8
        assert set(code) <= set(codes.ALPHABET)
        assert codes.is_code(code)
    assert len(codes.ALPHABET) == 62
    # every character of the alphabet is in GSM 03.38's basic set: one septet each
    assert is_gsm7(codes.ALPHABET) and gsm7_length(codes.ALPHABET) == 62


@pytest.mark.parametrize("path", ["", "abc", "a" * 17, "abc-defg", "abcdefg.", "ab cdefg", "ábcdefgh"])
def test_paths_that_cannot_be_codes(path):
    assert not codes.is_code(path)


def test_short_link_length_is_exact():
    link = codes.short_url("go.example.com", codes.new_code())
    assert link.startswith("https://go.example.com/")
    assert codes.short_link_length("go.example.com") == len(link) == len("https://go.example.com/") + 8


@pytest.mark.parametrize(("given", "expected"), [
    ("https://shop.example.com/sale?x=1#top", "https://shop.example.com/sale?x=1#top"),
    ("HTTP://Shop.Example.COM", "http://shop.example.com/"),
    ("https://shop.example.com:8443/a b".replace(" ", "%20"), "https://shop.example.com:8443/a%20b"),
    ("https://bücher.example/straße?q=ü", "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"),
    ("https://192.0.2.10/x", "https://192.0.2.10/x"),
    ("https://[2001:db8::1]:8080/x", "https://[2001:db8::1]:8080/x"),
    ("  https://example.com/trimmed  ", "https://example.com/trimmed"),
])
def test_accepted_urls_are_normalised(given, expected):
    assert urls.validate_original_url(given) == expected


@pytest.mark.parametrize(("given", "message"), [
    ("", "Enter the link to shorten."),
    ("javascript:alert(1)", "Only http:// and https:// links can be shortened."),
    ("JavaScript://%0aalert(1)", "Only http:// and https:// links can be shortened."),
    ("data:text/html,<script>alert(1)</script>", "Only http:// and https:// links can be shortened."),
    ("ftp://files.example.com/x", "Only http:// and https:// links can be shortened."),
    ("example.com/page", "Start the link with http:// or https://."),
    ("example.com:8080/page", "Start the link with http:// or https://."),
    ("https:///path-only", "The link needs a host name, such as https://example.com/."),
    ("https://bank.example@evil.example/", "Links with a user name or password cannot be shortened."),
    ("https://exa mple.com/", "The link cannot contain spaces or control characters."),
    ("https://example.com/\x00", "The link cannot contain spaces or control characters."),
    ("https://example.com/\r\nSet-Cookie:x", "The link cannot contain spaces or control characters."),
    ("https://exa_-.com/", "The host name of this link is not valid."),
    ("https://example.com:99999/", "This is not a valid web address."),
    ("https://[::1/", "This is not a valid web address."),
    ("https://example.com/" + "a" * 2100, "The link is too long: at most 2048 characters."),
    ("https://GO.Herald.test/abcdefgh", "This is already a short link; shorten the address it leads to instead."),
    ("https://go.herald.test./x", "This is already a short link; shorten the address it leads to instead."),
])
def test_refused_urls_say_why(given, message):
    with pytest.raises(Invalid) as caught:
        urls.validate_original_url(given, {"go.herald.test"})
    assert caught.value.message == message
    assert caught.value.field == "original_url"


@given(st.text(max_size=80))
def test_whatever_is_accepted_is_a_safe_location(value):
    try:
        url = urls.validate_original_url("https://example.com/" + value)
    except Invalid:
        return
    assert url.isascii() and url.startswith("https://example.com/")
    assert not any(ch.isspace() or ord(ch) < 0x20 for ch in url)


def test_the_link_in_a_message():
    message = "Sale! See https://shop.example.com/sale?x=1. Or (https://shop.example.com/b) today, http://other.example/"
    spans = text.find_links(message)
    assert [s.url for s in spans] == ["https://shop.example.com/sale?x=1", "https://shop.example.com/b",
                                      "http://other.example/"]
    assert text.find_link(message) == "https://shop.example.com/sale?x=1"
    assert text.find_link("no link here, only www.example.com") is None
    replaced = text.replace_link(message, "https://shop.example.com/b", "https://go.example/aB3dE6gH")
    assert replaced == message.replace("(https://shop.example.com/b)", "(https://go.example/aB3dE6gH)")
    # one link only: the first occurrence
    twice = "https://a.example/x and https://a.example/x"
    assert text.replace_link(twice, "https://a.example/x", "S") == "S and https://a.example/x"
    with pytest.raises(ValueError):
        text.replace_link(message, "https://absent.example/", "S")
    assert text.find_link("Wiki: https://en.wikipedia.org/wiki/Foo_(bar)!") == "https://en.wikipedia.org/wiki/Foo_(bar)"


def test_preview_has_the_length_of_every_real_message():
    original = "https://shop.example.com/a/very/long/landing/page?utm_source=sms"
    message = f"Hello! {original} ends soon"
    preview = text.preview_text(message, original, "go.example.com")
    real = text.replace_link(message, original, codes.short_url("go.example.com", codes.new_code()))
    assert len(preview) == len(real)
    assert len(preview) == len(message) - len(original) + codes.short_link_length("go.example.com")


@pytest.mark.parametrize(("agent", "os", "browser", "bot"), [
    (IPHONE, "iOS", "Mobile Safari", False),
    (ANDROID, "Android", "Chrome Mobile", False),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "Linux", "Firefox", False),
    ("WhatsApp/2.23.20.0 A", None, None, True),
    ("TelegramBot (like TwitterBot)", None, None, True),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", None, None, True),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", None, None, True),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) SkypeUriPreview Preview/0.5",
     None, None, True),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None, None, True),
    ("", "Other", "Other", True),
])
def test_user_agents(agent, os, browser, bot):
    found = useragents.classify(agent)
    assert found.bot is bot
    if os is not None:
        assert (found.os, found.browser) == (os, browser)
    assert useragents.cached(agent) == found


def test_periods():
    now = datetime(2026, 3, 15, 10, 30, tzinfo=UTC)
    day = periods.window("day", now)
    assert day.unit == "hour" and day.since == datetime(2026, 3, 14, 11, tzinfo=UTC)
    assert len(periods.series({}, day, now)) == 24
    week = periods.window("week", now)
    points = periods.series({datetime(2026, 3, 10, tzinfo=UTC): 4}, week, now)
    assert len(points) == 7 and dict(points)[datetime(2026, 3, 10, tzinfo=UTC)] == 4
    assert len(periods.series({}, periods.window("month", now), now)) == 30
    year = periods.window("year", now)
    assert year.since == datetime(2025, 4, 1, tzinfo=UTC) and len(periods.series({}, year, now)) == 12
    everything = periods.window("all", now, first_click=now - timedelta(days=400))
    assert everything.since is None and everything.unit == "month"
    assert periods.window("all", now, first_click=now - timedelta(hours=5)).unit == "hour"
    assert periods.window("all", now, first_click=now - timedelta(days=20)).unit == "day"
    assert periods.window("all", now).start == datetime(2026, 3, 15, 10, tzinfo=UTC)
