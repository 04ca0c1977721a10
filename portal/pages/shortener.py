"""The URL Shortener: short domains and the campaigns' links on them, click statistics, archive.

Two tabs over the same tree (short domain → links made for campaigns):
``/url-shortener`` holds the active links (newest first) under every domain
the user may use, ``/url-shortener/archive`` the archived ones (latest
archived first; deleted by housekeeping 30 days after). On the right, the
statistics of the selected domain or link for a period: people's clicks over
time, by operating system and by browser (bots and link previews counted
apart), drawn as SVG on the server. Each row can be archived, opened, or
downloaded as a click report (CSV or XLSX).

Everything is scoped to the signed-in user's partner: another partner's
link or domain is a 404, as is the whole section for a user without a short
domain and without links (the menu hides it: ``Account.has_shortener``).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from config.errors import NotFound
from gateway.base.app import DB
from portal import charts, exports, i18n
from portal.accounts import Account
from portal.auth import login_required, signed_in
from portal.i18n import N_
from portal.render import flash, render
from shortener import clicks, links, periods
from shortener.web import SHORTENER

routes = web.RouteTableDef()

BASE = "/url-shortener"
ARCHIVE = f"{BASE}/archive"
_SELECTION = re.compile(r"^([dl])(\d{1,18})$")
_ID = r"{id:\d{1,18}}"
PERIOD_LABELS = (("all", N_("All")), ("day", N_("Day")), ("week", N_("Week")), ("month", N_("Month")),
                 ("year", N_("Year")))
REPORT_LIMIT = 5000  # rows read per query while a report streams


def shortener_user(request: web.Request) -> Account:
    """The signed-in user, if the URL Shortener is theirs to see (else the section does not exist)."""
    user = signed_in(request)
    if not user.has_shortener:
        raise NotFound("This section is not available for your account.")
    return user


@dataclass(frozen=True, slots=True)
class Selection:
    kind: str  # "domain" or "link"
    id: int
    name: str
    link_ids: tuple[int, ...]
    link: links.ShortLink | None = None


def _select(tree: list[links.DomainNode], raw: str) -> Selection | None:
    """The domain or link named by ``sel`` (``d<id>`` / ``l<id>``); the first domain by default."""
    if not raw:
        if not tree:
            return None
        first = tree[0]
        return Selection("domain", first.id, first.host, tuple(link.id for link in first.links))
    match = _SELECTION.match(raw)
    if match is None:
        raise NotFound("no such short link")
    kind, number = match.group(1), int(match.group(2))
    for node in tree:
        if kind == "d" and node.id == number:
            return Selection("domain", node.id, node.host, tuple(link.id for link in node.links))
        for link in node.links:
            if kind == "l" and link.id == number:
                return Selection("link", link.id, link_name(link), (link.id,), link)
    raise NotFound("no such short link")


def link_name(link: links.ShortLink) -> str:
    if link.name:
        return link.name
    if link.campaign_id is not None:
        return i18n.gettext("Campaign %(number)s", number=link.campaign_id)
    return i18n.gettext("Link %(number)s", number=link.id)


def _tick(moment: datetime, unit: str) -> str:
    if unit == "hour":
        return moment.strftime("%H:%M")
    if unit == "day":
        return i18n.format_date(moment, "d MMM")
    return i18n.format_date(moment, "MMM yyyy")


async def statistics(conn, partner_id: int, link_ids: tuple[int, ...], period: str) -> dict[str, Any]:
    """What the statistics panel shows for some links over a period (pure reads)."""
    now = datetime.now(UTC)
    if period == "all":
        first = (await clicks.totals(conn, partner_id, link_ids, None)).first_click if link_ids else None
        win = periods.window("all", now, first)
    else:
        win = periods.window(period, now)
    if link_ids:
        total = await clicks.totals(conn, partner_id, link_ids, win.since)
        counts = await clicks.timeline(conn, partner_id, link_ids, win.since, win.unit)
        by_os = await clicks.breakdown(conn, partner_id, link_ids, win.since, "os")
        by_browser = await clicks.breakdown(conn, partner_id, link_ids, win.since, "browser")
    else:
        total, counts, by_os, by_browser = clicks.Totals(0, 0, None), {}, [], []
    series = periods.series(counts, win, now)
    other = i18n.gettext("Other")
    return {
        "people": total.people, "bots": total.bots, "unit": win.unit,
        "timeline": charts.column_chart([(_tick(m, win.unit), v) for m, v in series]),
        "by_os": charts.shares([(other if n == "Other" else n, v) for n, v in by_os], other=other),
        "by_browser": charts.shares([(other if n == "Other" else n, v) for n, v in by_browser], other=other),
    }


def _query(**params: str) -> str:
    kept = {k: v for k, v in params.items() if v}
    return "?" + urlencode(kept) if kept else ""


async def _tab(request: web.Request, *, archived: bool) -> web.Response:
    user = shortener_user(request)
    query = request.query.get("q", "")[:100]
    period = request.query.get("period", "all")
    if period not in periods.PERIODS:
        period = "all"
    base = ARCHIVE if archived else BASE
    async with request.app[DB].acquire() as conn:
        tree = await links.partner_tree(conn, user.partner_id, user.id, archived=archived, query=query)
        selected = _select(tree, request.query.get("sel", ""))
        stats = await statistics(conn, user.partner_id, selected.link_ids, period) if selected else None
    sel = (f"{selected.kind[0]}{selected.id}" if selected else "")

    def href(**changes: str) -> str:
        values = {"q": query, "sel": sel, "period": period if period != "all" else ""}
        values.update(changes)
        return base + _query(**values)

    return render(request, "shortener/index.html", {
        "tree": tree, "selected": selected, "stats": stats, "archived": archived, "query": query,
        "period": period, "periods": PERIOD_LABELS, "href": href, "base": base, "link_name": link_name,
        "tab": "archive" if archived else "domains",
        "tabs": [("domains", i18n.gettext("Short Domains"), BASE), ("archive", i18n.gettext("Archive"), ARCHIVE)],
        "archive_days": links.ARCHIVE_DAYS, "now": datetime.now(UTC),
    }, active="shortener", title=i18n.gettext("URL Shortener"))


@routes.get(BASE)
@login_required
async def short_domains(request: web.Request) -> web.Response:
    return await _tab(request, archived=False)


@routes.get(ARCHIVE)
@login_required
async def archive(request: web.Request) -> web.Response:
    return await _tab(request, archived=True)


@routes.get(f"{BASE}/links/{_ID}")
@login_required
async def link_details(request: web.Request) -> web.Response:
    user = shortener_user(request)
    async with request.app[DB].acquire() as conn:
        link = await links.get_link(conn, user.partner_id, int(request.match_info["id"]))
        who = await clicks.clicked_recipients(conn, user.partner_id, link.id) if link.per_recipient else []
        total = await clicks.totals(conn, user.partner_id, (link.id,), None)
    return render(request, "shortener/link.html", {
        "link": link, "name": link_name(link), "who": who, "totals": total,
        "back": ARCHIVE if link.archived_at else BASE, "now": datetime.now(UTC),
    }, active="shortener", title=link_name(link))


@routes.post(f"{BASE}/links/{_ID}/archive")
@login_required
async def archive_link(request: web.Request) -> web.Response:
    user = shortener_user(request)
    async with request.app[DB].acquire() as conn:
        link = await links.get_link(conn, user.partner_id, int(request.match_info["id"]))
        done = await links.archive_links(conn, user.partner_id, [link.id])
    await request.app[SHORTENER].changed()
    if done:
        await flash(request, N_("%(name)s moved to the archive. Its link answers “not found” from now on."),
                    name=link_name(link))
    raise web.HTTPSeeOther(BASE)


async def _own_domain(conn, user: Account, domain_id: int, *, archived: bool) -> links.DomainNode:
    for node in await links.partner_tree(conn, user.partner_id, user.id, archived=archived):
        if node.id == domain_id:
            return node
    raise NotFound("no such short domain")


@routes.post(f"{BASE}/domains/{_ID}/archive")
@login_required
async def archive_domain(request: web.Request) -> web.Response:
    user = shortener_user(request)
    async with request.app[DB].acquire() as conn:
        node = await _own_domain(conn, user, int(request.match_info["id"]), archived=False)
        done = await links.archive_domain(conn, user.partner_id, node.id)
    await request.app[SHORTENER].changed()
    await flash(request, N_("Links moved to the archive: %(count)s."), count=done)
    raise web.HTTPSeeOther(BASE)


REPORT_HEADER = (
    N_("Time (UTC)"), N_("Short link"), N_("Campaign"), N_("Campaign ID"), N_("Original URL"), N_("Recipient"),
    N_("Message ID"), N_("Operating system"), N_("Browser"), N_("Device"), N_("Bot or link preview"),
    N_("Referrer"), N_("Country"), N_("User agent"),
)


async def _report(request: web.Request, link_ids: list[int], name: str, fmt: str) -> web.StreamResponse:
    user = shortener_user(request)
    pool = request.app[DB]
    header = [i18n.gettext(h) for h in REPORT_HEADER]

    def row(r) -> list:
        return [r["clicked_at"], f"https://{r['host']}/{r['code']}", r["name"], r["campaign_id"],
                r["original_url"], r["recipient"] or "", str(r["message_id"] or ""), r["os"], r["browser"],
                r["device"], r["bot"], r["referrer"], r["country"], r["user_agent"]]

    async def pages():
        after = 0
        while True:
            rows = await clicks.report_page(pool, user.partner_id, link_ids, after, REPORT_LIMIT)
            if not rows:
                return
            yield [row(r) for r in rows]
            after = rows[-1]["id"]

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "report"
    filename = f"clicks-{stem}.{fmt}"
    if fmt == "xlsx":
        book = await asyncio.to_thread(exports.XlsxFile, header, title=i18n.gettext("Clicks"))
        async for chunk in pages():
            await asyncio.to_thread(book.add, chunk)
            if book.full:
                break
        body = await asyncio.to_thread(book.finish)
        return web.Response(body=body, content_type=exports.XLSX_TYPE, headers={
            "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})
    await response.prepare(request)
    await response.write(exports.csv_header(header))
    async for chunk in pages():
        await response.write(exports.csv_rows(chunk))
    await response.write_eof()
    return response


@routes.get(BASE + "/links/" + _ID + "/report.{fmt:csv|xlsx}")
@login_required
async def link_report(request: web.Request) -> web.StreamResponse:
    user = shortener_user(request)
    async with request.app[DB].acquire() as conn:
        link = await links.get_link(conn, user.partner_id, int(request.match_info["id"]))
    return await _report(request, [link.id], f"{link.host}-{link_name(link)}", request.match_info["fmt"])


@routes.get(BASE + "/domains/" + _ID + "/report.{fmt:csv|xlsx}")
@login_required
async def domain_report(request: web.Request) -> web.StreamResponse:
    user = shortener_user(request)
    archived = request.query.get("archived") == "1"
    async with request.app[DB].acquire() as conn:
        node = await _own_domain(conn, user, int(request.match_info["id"]), archived=archived)
        ids = await links.partner_links(conn, user.partner_id, node.id, archived=archived)
    return await _report(request, ids, node.host, request.match_info["fmt"])
