"""Translations: gettext catalogues in EN, ES, RU and TR, chosen per request.

The ``.po`` files under ``portal/locale/<lang>/LC_MESSAGES/messages.po`` are the
source; they are compiled in memory with Babel when the application starts, so
there is no build step and no ``.mo`` file to forget. The language of the
request lives in a context variable set by the portal middleware; ``gettext``
here and ``_()`` / ``{% trans %}`` in templates read it.

Strings defined at import time (menu labels, form labels) are marked with
:func:`N_` so the extractor finds them, and translated when rendered.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import jinja2
from babel import Locale, dates, numbers
from babel.messages import mofile, pofile
from babel.support import NullTranslations, Translations

LANGUAGES: tuple[str, ...] = ("en", "es", "ru", "tr")
LANGUAGE_NAMES: Mapping[str, str] = {
    "en": "English", "es": "Español", "ru": "Русский", "tr": "Türkçe",
}
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGE_COOKIE = "herald_lang"
THEME_COOKIE = "herald_theme"


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


@dataclass(frozen=True, slots=True)
class Catalogs:
    """Compiled translations for each language."""

    translations: Mapping[str, NullTranslations]

    def get(self, language: str) -> NullTranslations:
        return self.translations.get(language) or self.translations[DEFAULT_LANGUAGE]


def compile_po(path: Path, language: str) -> Translations:
    """Read one ``.po`` file and compile it in memory (fuzzy entries are left out)."""
    with path.open("rb") as fh:
        catalog = pofile.read_po(fh, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def load_catalogs(locale_dir: Path = LOCALE_DIR) -> Catalogs:
    """Every language's catalogue; English falls back to the source strings."""
    loaded: dict[str, NullTranslations] = {}
    for language in LANGUAGES:
        path = locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        loaded[language] = compile_po(path, language) if path.exists() else NullTranslations()
    return Catalogs(loaded)


_translations: ContextVar[NullTranslations | None] = ContextVar("herald_translations", default=None)
_SOURCE = NullTranslations()  # untranslated message ids, outside any request
_language: ContextVar[str] = ContextVar("herald_language", default=DEFAULT_LANGUAGE)


def activate(catalogs: Catalogs, language: str) -> tuple[object, object]:
    """Make ``language`` current for this task; returns tokens for :func:`deactivate`."""
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    return _translations.set(catalogs.get(language)), _language.set(language)


def deactivate(tokens: tuple[object, object]) -> None:
    _translations.reset(tokens[0])  # type: ignore[arg-type]
    _language.reset(tokens[1])  # type: ignore[arg-type]


@contextlib.contextmanager
def use_language(catalogs: Catalogs, language: str) -> Iterator[None]:
    """Translate in ``language`` inside the block (e-mail to a user, say)."""
    tokens = activate(catalogs, language)
    try:
        yield
    finally:
        deactivate(tokens)


def current_language() -> str:
    return _language.get()


def _current() -> NullTranslations:
    return _translations.get() or _SOURCE


def gettext(message: str, **variables: object) -> str:
    """``message`` in the current language, with ``%(name)s`` placeholders filled."""
    text = _current().gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    """Singular or plural form for ``n`` (``%(num)s`` is ``n``), in the current language."""
    text = _current().ngettext(singular, plural, n)
    return text % {"num": n, **variables}


_ = gettext


def negotiate(accept_language: str, available: tuple[str, ...] | list[str] = LANGUAGES) -> str | None:
    """The best of ``available`` for an Accept-Language header, or None."""
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            wanted.append((-quality, index, tag.strip().lower()))
    for _q, _i, tag in sorted(wanted):
        primary = tag.split("-")[0]
        if primary in available:
            return primary
    return None


# Formatting in the current language (babel), used as Jinja filters too.

def format_datetime(value: datetime | None, form: str = "medium") -> str:
    if value is None:
        return ""
    return dates.format_datetime(value, form, tzinfo=dates.UTC, locale=current_language())


def format_date(value: datetime | None, form: str = "medium") -> str:
    if value is None:
        return ""
    return dates.format_date(value, form, locale=current_language())


def format_money(amount: Decimal | int | None, currency: str) -> str:
    if amount is None:
        return ""
    return numbers.format_currency(amount, currency.strip(), locale=current_language())


def format_number(value: int | Decimal) -> str:
    return numbers.format_decimal(value, locale=current_language())


def language_name(language: str) -> str:
    return LANGUAGE_NAMES.get(language, language)


def text_direction(language: str) -> str:
    return Locale.parse(language).text_direction


def install_jinja(env: jinja2.Environment) -> None:
    """Give templates ``_()``, ``ngettext()`` and ``{% trans %}`` reading the current language."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: _current().gettext(message),
        lambda singular, plural, n: _current().ngettext(singular, plural, n),
        newstyle=True,
    )
    env.filters.update(
        datetime=format_datetime, date=format_date, money=format_money, number=format_number,
    )
