"""Maintaining the translation catalogues: extract, update, check.

    python -m portal.catalog update   # extract messages, merge them into every .po file
    python -m portal.catalog check    # list messages without a translation (exit 1 if any)

Messages come from the portal's Python code and templates (``_()``,
``ngettext()``, ``N_()``, ``{% trans %}``) and from the first argument of
Herald's domain errors (``Invalid("...")`` and friends), which forms show to
users. English is the source language: its catalogue only holds plural forms.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.pofile import read_po, write_po

from portal.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

ROOT = Path(__file__).resolve().parent.parent
PORTAL_DIR = ROOT / "portal"
EXTRA_SOURCES = (
    ROOT / "gateway" / "intake" / "apikeys.py",
    # Domain errors the Admin Panel's forms show next to their fields.
    *(ROOT / "accounts" / f"{name}.py" for name in ("partners", "portals", "users", "senders", "tenancy")),
    *(ROOT / "billing" / f"{name}.py" for name in ("vendors", "plans", "packs", "ledger", "refbook", "rates")),
    ROOT / "gateway" / "intake" / "smpp_accounts.py",
    ROOT / "gateway" / "accept" / "routing.py",  # route form errors (Admin Panel, Message routes)
    # Contacts: field and group errors, import reasons, file refusals, labels.
    *(ROOT / "contacts" / f"{name}.py" for name in (
        "contacts", "fields", "groups", "imports", "files", "export")),
    # URL Shortener: refused original URLs and short domains, shown next to their fields
    *(ROOT / "shortener" / f"{name}.py" for name in ("urls", "domains", "links")),
)

KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "Invalid": None, "Conflict": None, "NotFound": None, "Forbidden": None, "HeraldError": None,
}
METHOD_MAP = [
    ("**/static/**", "ignore"),
    ("**.py", "python"),
    ("**/templates/**.html", "jinja2.ext:babel_extract"),
    ("**/templates/**.txt", "jinja2.ext:babel_extract"),
]
OPTIONS_MAP = {
    "**/templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"},
    "**/templates/**.txt": {"trim_blocks": "true", "lstrip_blocks": "true"},
}


def _messages() -> Iterator[tuple[str, int, str | tuple[str, ...], list[str], str | None]]:
    yield from extract_from_dir(
        str(PORTAL_DIR), METHOD_MAP, OPTIONS_MAP, keywords=KEYWORDS, strip_comment_tags=True
    )
    for path in EXTRA_SOURCES:
        for lineno, message, comments, context in extract_from_file(
            "python", str(path), keywords=KEYWORDS
        ):
            yield str(path.relative_to(ROOT)), lineno, message, comments, context


def extract() -> Catalog:
    """Every message the portal shows, as a template catalogue."""
    template = Catalog(project="Herald", domain=DOMAIN, charset="utf-8", fuzzy=False)
    for filename, lineno, message, comments, context in _messages():
        if not message or (isinstance(message, tuple) and not message[0]):
            continue
        top = filename.split("/", 1)[0]
        location = filename if top in ("portal", "gateway", "billing", "accounts", "shortener") else f"portal/{filename}"
        template.add(message, None, [(location, lineno)], auto_comments=comments, context=context)
    return template


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, domain=DOMAIN, project="Herald", fuzzy=False)
    with path.open("rb") as fh:
        return read_po(fh, locale=language, domain=DOMAIN)


def save(catalog: Catalog, language: str) -> None:
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog.header_comment = f"# Herald portal messages, {language}.\n# Edit msgstr lines; run `python -m portal.catalog update` after changing messages in code."
    catalog.project, catalog.version = "Herald", "0.1"
    catalog.msgid_bugs_address = ""
    catalog.last_translator = "Herald contributors"
    catalog.language_team = f"{language} <herald@localhost>"
    with path.open("wb") as fh:
        write_po(fh, catalog, width=100, sort_output=False, include_previous=False,
                 include_lineno=False)


def update() -> None:
    """Merge the extracted messages into every language's .po (obsolete ones are dropped)."""
    template = extract()
    for language in LANGUAGES:
        catalog = load(language)
        created = catalog.creation_date
        catalog.update(template, no_fuzzy_matching=True)
        # A fixed header date: branches that each add messages then merge cleanly.
        catalog.creation_date = created
        catalog.obsolete.clear()
        save(catalog, language)


def missing(language: str, template: Catalog | None = None) -> list[str]:
    """Message ids with no (or a fuzzy) translation in ``language``; English needs none."""
    template = template or extract()
    if language == "en":
        return []
    catalog = load(language)
    gaps = []
    for message in template:
        if not message.id:
            continue
        found = catalog.get(message.id, context=message.context)
        strings = found.string if found is not None else None
        if isinstance(strings, tuple):
            complete = all(strings)
        else:
            complete = bool(strings)
        if found is None or found.fuzzy or not complete:
            gaps.append(message.id if isinstance(message.id, str) else message.id[0])
    return gaps


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        update()
        return 0
    if command == "check":
        template = extract()
        failed = False
        for language in LANGUAGES:
            gaps = missing(language, template)
            for gap in gaps:
                print(f"{language}: {gap}")
            failed = failed or bool(gaps)
        return 1 if failed else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
