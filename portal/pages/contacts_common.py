"""What the Contacts screens share: tabs, ids from the URL and forms, sender ID choices, downloads.

The four tabs (Contacts, Groups, Import History, Stop List) live in
``contacts.py``, ``groups.py``, ``imports.py`` and ``stoplist.py`` beside this
module, with their templates in ``templates/contacts/``. Every handler scopes
its queries by the signed-in user's partner; another partner's id is a 404.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from accounts import senders as billing_senders
from config.errors import NotFound
from contacts import export, phones, stoplist
from gateway.base.app import DB
from portal import i18n
from portal.auth import signed_in
from portal.i18n import N_

MAX_ID = 2**63 - 1
TABS = (
    ("contacts", N_("Contacts"), "/contacts"),
    ("groups", N_("Groups"), "/contacts/groups"),
    ("imports", N_("Import History"), "/contacts/imports"),
    ("stoplist", N_("Stop List"), "/contacts/stop-list"),
)
FORMATS = ("xlsx", "csv")


def tabs() -> list[tuple[str, str, str]]:
    return [(key, i18n.gettext(label), href) for key, label, href in TABS]


def db(request: web.Request):
    return request.app[DB]


def int_param(request: web.Request, name: str) -> int:
    """An id from the URL; anything else (or past bigint) is a page that does not exist."""
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_ID or int(raw) == 0:
        raise NotFound("no such object")
    return int(raw)


def ids_of(values: Sequence[object]) -> list[int]:
    """Row ids posted by a form, ignoring anything that is no id."""
    found = []
    for value in values:
        text = str(value).strip()
        if text.isdigit() and len(text) <= 19 and 0 < int(text) <= MAX_ID:
            found.append(int(text))
    return list(dict.fromkeys(found))[:1000]


async def user_country(request: web.Request) -> str | None:
    """The signed-in user's country (default for local numbers), None when not chosen."""
    value = await db(request).fetchval("SELECT country FROM users WHERE id = $1", signed_in(request).id)
    return value.strip() if value else None


async def remember_country(request: web.Request, country: str | None) -> None:
    if country:
        await db(request).execute("UPDATE users SET country = $2 WHERE id = $1", signed_in(request).id, country)


def country_choices() -> list[tuple[str, str]]:
    """ISO codes with the country's name in the current language, sorted by name."""
    from babel import Locale

    locale = Locale.parse(i18n.current_language())
    names = locale.territories
    choices = [(code, f"{names.get(code, code)} (+{phones.calling_code(code)})") for code in phones.countries()]
    return sorted(choices, key=lambda c: c[1].casefold())


def clean_country(value: object) -> str | None:
    text = str(value or "").strip().upper()
    return text if text in phones.countries() else None


async def sender_choices(request: web.Request, extra: Sequence[str] = ()) -> list[str]:
    """The partner's usable sender IDs (SMS and Viber), and ``extra`` ones already blocked."""
    partner_id = signed_in(request).partner_id
    now = datetime.now(UTC)
    found: dict[str, None] = {}
    for channel in ("sms", "viber"):
        for sender in await billing_senders.usable_senders(db(request), partner_id, channel, now):
            found.setdefault(sender, None)
    for sender in extra:
        if sender != stoplist.ALL:
            found.setdefault(sender, None)
    return sorted(found, key=str.casefold)


def attachment(name: str) -> str:
    """A Content-Disposition value for ``name`` (ASCII fallback and the UTF-8 name)."""
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._- ") else "_" for ch in name)
    return f"attachment; filename=\"{ascii_name or 'download'}\"; filename*=UTF-8''{quote(name)}"


async def stream_download(request: web.Request, name: str, content_type: str,
                          chunks: AsyncIterator[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": content_type, "Content-Disposition": attachment(name),
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
    })
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def table_download(request: web.Request, fmt: str, base_name: str, header: Sequence[str],
                         rows: AsyncIterator[Sequence[object]]) -> web.StreamResponse:
    """Rows as a CSV (streamed as made) or XLSX (built in a temporary file, then sent) download."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    if fmt == "csv":
        return await stream_download(request, f"{base_name}-{stamp}.csv", "text/csv; charset=utf-8",
                                     export.csv_chunks(header, rows))
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="herald-export-"))
    try:
        path = folder / "export.xlsx"
        await export.write_xlsx(path, header, rows)
        return await stream_download(request, f"{base_name}-{stamp}.xlsx", XLSX_TYPE,
                                     export.file_chunks(path))
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


def fmt_of(value: object) -> str:
    return str(value) if str(value) in FORMATS else "xlsx"
