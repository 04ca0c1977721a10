"""Translations: complete, consistent placeholders, chosen per request."""

from __future__ import annotations

import re

import pytest

from portal import catalog, i18n
from tests.portal.conftest import page, post

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.fixture(scope="module")
def template():
    return catalog.extract()


def test_every_message_is_translated(template):
    assert len(template) > 200
    for language in ("es", "ru", "tr"):
        assert catalog.missing(language, template) == [], language


@pytest.mark.parametrize("language", ["es", "ru", "tr"])
def test_placeholders_survive_translation(language):
    for message in catalog.load(language):
        if not message.id or not message.string or message.string == ("",) * len(message.string):
            continue  # untranslated: test_every_message_is_translated reports it
        if isinstance(message.id, tuple):
            allowed = set(PLACEHOLDER.findall(message.id[0])) | set(PLACEHOLDER.findall(message.id[1]))
            for form in message.string:
                assert set(PLACEHOLDER.findall(form)) <= allowed, (language, message.id)
        else:
            assert set(PLACEHOLDER.findall(message.string)) == set(PLACEHOLDER.findall(message.id)), (
                language, message.id)


def test_translations_are_not_english_copies():
    catalogs = i18n.load_catalogs()
    samples = ("Sign in", "Create an API key", "Two-factor authentication", "Balance")
    seen = {}
    for language in ("es", "ru", "tr"):
        with i18n.use_language(catalogs, language):
            seen[language] = [i18n.gettext(s) for s in samples]
            assert all(a != b for a, b in zip(seen[language], samples, strict=True)), language
    assert len({tuple(v) for v in seen.values()}) == 3


def test_plural_forms():
    catalogs = i18n.load_catalogs()
    with i18n.use_language(catalogs, "ru"):
        assert i18n.ngettext("%(num)s key removed.", "%(num)s keys removed.", 1) == "Удалён 1 ключ."
        assert i18n.ngettext("%(num)s key removed.", "%(num)s keys removed.", 3) == "Удалено 3 ключа."
        assert i18n.ngettext("%(num)s key removed.", "%(num)s keys removed.", 5) == "Удалено 5 ключей."
    with i18n.use_language(catalogs, "en"):
        assert i18n.ngettext("%(num)s key removed.", "%(num)s keys removed.", 2) == "2 keys removed."


def test_negotiate():
    assert i18n.negotiate("ru-RU,ru;q=0.9,en;q=0.8") == "ru"
    assert i18n.negotiate("de, tr;q=0.5, es;q=0.7") == "es"
    assert i18n.negotiate("de, fr") is None
    assert i18n.negotiate("es;q=0, en") == "en"
    assert i18n.negotiate("") is None


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(("language", "title"), [
    ("en", "Sign in"), ("es", "Iniciar sesión"), ("ru", "Вход"), ("tr", "Giriş yap"),
])
async def test_pages_in_each_language(client, language, title):
    response = await post(client, "/prefs/language", {"language": language, "next": "/signin"})
    assert response.status == 303
    _status, html = await page(client, "/signin")
    assert f'<html lang="{language}"' in html
    assert f"<h1>{title}</h1>" in html


@pytest.mark.asyncio(loop_scope="session")
async def test_form_errors_are_translated(client):
    await post(client, "/prefs/language", {"language": "ru"})
    response = await post(client, "/signin", {"email": "", "password": ""})
    assert "Это поле обязательно." in await response.text()
