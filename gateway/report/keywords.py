"""Keyword matching for incoming messages (MO): reply templates and opt-out words, as pure
functions over data (the rules: ``gateway/report/README.md``)."""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from config.errors import Invalid

_WORD = re.compile(r"\w+")


class Action(enum.StrEnum):
    """What happens to the contact's subscription to the sender ID."""

    NONE = "none"
    UNSUBSCRIBE = "unsubscribe"   # block the sender ID for this contact
    SUBSCRIBE = "subscribe"       # lift that block


def words(text: str) -> tuple[str, ...]:
    """The words of ``text``, case-folded, without punctuation."""
    return tuple(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def parse_keywords(text: str) -> tuple[str, ...]:
    """A template's comma-separated keyword field as normalised phrases, duplicates dropped."""
    seen: dict[str, None] = {}
    for part in text.split(","):
        phrase = " ".join(words(part))
        if phrase:
            seen.setdefault(phrase, None)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class ReplyTemplate:
    id: int
    keywords: tuple[str, ...]
    reply_text: str
    priority: int
    created_at: datetime
    channel: str = "sms"
    action: Action = Action.NONE
    subscribe_group_id: int | None = None     # move the contact here on subscribe
    unsubscribe_group_id: int | None = None   # ... and here on unsubscribe

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 10:
            raise Invalid("priority must be from 1 to 10", field="priority")
        if not any(words(k) for k in self.keywords):
            raise Invalid("at least one keyword is required", field="keywords")


@dataclass(frozen=True, slots=True)
class BuiltinKeywords:
    unsubscribe: frozenset[str] = frozenset(
        {"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
    subscribe: frozenset[str] = frozenset({"start", "unstop", "subscribe"})

    @classmethod
    def from_lists(cls, unsubscribe: Iterable[str], subscribe: Iterable[str]) -> BuiltinKeywords:
        """A partner's own lists (any case, one word each)."""
        return cls(frozenset(w.casefold() for w in unsubscribe),
                   frozenset(w.casefold() for w in subscribe))

    def action_for(self, message_words: tuple[str, ...]) -> Action:
        if len(message_words) != 1:
            return Action.NONE
        (word,) = message_words
        if word in self.unsubscribe:
            return Action.UNSUBSCRIBE
        if word in self.subscribe:
            return Action.SUBSCRIBE
        return Action.NONE


DEFAULT_BUILTINS = BuiltinKeywords()


@dataclass(frozen=True, slots=True)
class ReplyDecision:
    """What to do with an incoming message."""

    template_id: int | None      # None: only a built-in word matched
    reply_text: str | None       # None: send no reply
    action: Action
    group_id: int | None         # move the contact to this group (None: stay)
    keyword: str                 # the keyword that matched, normalised
    builtin_action: bool         # the action came from the built-in words


def _matches(keyword: str, message_words: tuple[str, ...], anywhere: bool) -> bool:
    kw = words(keyword)
    if not kw or len(kw) > len(message_words):
        return False
    if not anywhere:
        return message_words[: len(kw)] == kw
    return any(message_words[i : i + len(kw)] == kw
               for i in range(len(message_words) - len(kw) + 1))


def match_reply(
    templates: Iterable[ReplyTemplate], text: str, *, channel: str | None = None,
    builtins: BuiltinKeywords | None = DEFAULT_BUILTINS, anywhere: bool = False,
) -> ReplyDecision | None:
    """The decision for an MO ``text`` (the rules: ``gateway/report/README.md``); None: nothing to do."""
    message_words = words(text)
    best: tuple[ReplyTemplate, str] | None = None
    for template in templates:
        if channel is not None and template.channel != channel:
            continue
        hits = [k for k in template.keywords if _matches(k, message_words, anywhere)]
        if not hits:
            continue
        hit = max(hits, key=lambda k: len(words(k)))  # report the most specific phrase
        if best is None or (template.priority, template.created_at, template.id) > (
            best[0].priority, best[0].created_at, best[0].id
        ):
            best = (template, hit)
    builtin = builtins.action_for(message_words) if builtins else Action.NONE
    if best is None:
        if builtin is Action.NONE:
            return None
        return ReplyDecision(None, None, builtin, None, message_words[0], True)
    template, hit = best
    action, from_builtin = template.action, False
    if action is Action.NONE and builtin is not Action.NONE:
        action, from_builtin = builtin, True
    group = {
        Action.SUBSCRIBE: template.subscribe_group_id,
        Action.UNSUBSCRIBE: template.unsubscribe_group_id,
    }.get(action)
    return ReplyDecision(template.id, template.reply_text, action, group,
                         " ".join(words(hit)), from_builtin)
