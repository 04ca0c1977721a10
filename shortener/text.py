"""The one link of a message text: finding it, and writing the short link in its place. Pure.

A link is ``http://`` or ``https://`` followed by anything up to white space,
less the punctuation a sentence puts after it (``.``, ``,``, ``!``…) and a
closing bracket that has no opening one inside the link. Only one link per
message is shortened: the first occurrence of the original URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shortener import codes

_LINK = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?'’”»"
_PAIRS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True, slots=True)
class LinkSpan:
    start: int
    end: int
    url: str


def _trim(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in _PAIRS and url.count(_PAIRS[last]) < url.count(last):
            url = url[:-1]
        else:
            break
    return url


def find_links(text: str) -> list[LinkSpan]:
    """Every http(s) link in ``text``, in order."""
    spans = []
    for match in _LINK.finditer(text):
        url = _trim(match.group(0))
        if len(url) > len("https://"):
            spans.append(LinkSpan(match.start(), match.start() + len(url), url))
    return spans


def find_link(text: str) -> str | None:
    """The first link in ``text`` (the one the wizard offers to shorten), or None."""
    spans = find_links(text)
    return spans[0].url if spans else None


def replace_link(text: str, original_url: str, short_link: str) -> str:
    """``text`` with the first occurrence of ``original_url`` replaced by ``short_link``.

    Raises :class:`ValueError` when the text has no such link.
    """
    for span in find_links(text):
        if span.url == original_url:
            return text[: span.start] + short_link + text[span.end :]
    raise ValueError("the message has no such link")


def preview_text(text: str, original_url: str, host: str) -> str:
    """``text`` as it will be sent, with a code of the exact length in the short link.

    Every code has the same length and alphabet (GSM 7-bit), so characters and
    segments counted on this text are those of every message sent.
    """
    return replace_link(text, original_url, codes.short_url(host, codes.SAMPLE_CODE))
