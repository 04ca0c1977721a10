"""Stop List (guide §6.4): the numbers with blocked sender IDs, add, unblock, export.

Rows are numbers of ``stop_list`` (the table the message pipeline checks),
with the contact of that number when there is one. Row ids are the numbers'
digits (they fit a bigint), so the shared table's bulk selection works.
"""

from __future__ import annotations

from aiohttp import web

from config.errors import HeraldError, NotFound
from contacts import contacts, groups, phones, stoplist
from portal import i18n, tables
from portal.auth import login_required, signed_in
from portal.i18n import N_
from portal.pages import contacts_common as common
from portal.render import flash, render

routes = web.RouteTableDef()
TABLE = tables.TableSpec(
    id="stop_list", label=N_("Stop List"),
    columns=(
        tables.Column("phone", N_("Phone"), hideable=False),
        tables.Column("name", N_("Contact")),
        tables.Column("senders", N_("Blocked sender IDs")),
        tables.Column("source", N_("Blocked by")),
        tables.Column("last", N_("Last blocked")),
    ),
    filters=(tables.Filter("phone", N_("Phone starts with")), tables.Filter("sender", N_("Sender ID"))),
    bulk_actions=(
        tables.BulkAction("remove", N_("Remove from Stop List"), "/contacts/stop-list/bulk/remove"),
        tables.BulkAction("export", N_("Export"), "/contacts/stop-list/bulk/export"),
    ),
    row_actions=True, sort_key=lambda b: (b.msisdn,), row_id=lambda b: b.row_id,
)
SOURCES = {"manual": N_("By hand"), "mo": N_("Reply from the number"), "import": N_("Import")}


def _numbers(values) -> list[str]:
    return [str(i) for i in common.ids_of(values)]


@routes.get("/contacts/stop-list")
@login_required
async def stop_list(request: web.Request) -> web.Response:
    user = signed_in(request)

    async def fetch(*, filters, after, before, limit):
        prefix = phones.prefix_filter(filters["phone"])
        if prefix is None:
            return []
        return await stoplist.list_page(common.db(request), user.partner_id, phone=prefix,
                                        sender=filters["sender"], after=after, before=before, limit=limit)

    view = await tables.load(request, TABLE, fetch, prefs=tables.table_prefs(user.ui_prefs, TABLE.id))
    return render(request, "contacts/stoplist.html", {
        "view": view, "sources": SOURCES, "tabs": common.tabs(), "tab": "stoplist",
        "export_query": {k: v for k, v in view.filters.items() if v},
    }, active="contacts", title=i18n.gettext("Stop List"))


async def _add_page(request: web.Request, *, values: dict, errors: dict, status: int = 200) -> web.Response:
    conn = common.db(request)
    partner_id = signed_in(request).partner_id
    return render(request, "contacts/stop_add.html", {
        "values": values, "errors": errors, "senders": await common.sender_choices(request),
        "groups": await groups.all_groups(conn, partner_id), "countries": common.country_choices(),
        "tabs": common.tabs(), "tab": "stoplist",
    }, status=status, active="contacts", title=i18n.gettext("Add to the Stop List"))


@routes.get("/contacts/stop-list/new")
@login_required
async def add_page(request: web.Request) -> web.Response:
    stop = await groups.stop_list_group(common.db(request), signed_in(request).partner_id)
    return await _add_page(request, values={"group": stop.id, "country": await common.user_country(request),
                                            "senders": []}, errors={})


@routes.post("/contacts/stop-list")
@login_required
async def add(request: web.Request) -> web.Response:
    """Block sender IDs for a number; a number that is no contact yet becomes one in the chosen group."""
    user = signed_in(request)
    data = await request.post()
    country = common.clean_country(data.get("country"))
    raw_phone = str(data.get("phone", "")).strip()[:100]
    senders = stoplist.clean_senders([str(s) for s in data.getall("senders", [])])
    group_id = common.ids_of([data.get("group", "")])
    values = {"phone": raw_phone, "country": country, "senders": senders,
              "group": group_id[0] if group_id else None}
    errors = {}
    phone = phones.normalise(raw_phone, country) if raw_phone else None
    if phone is None:
        errors["phone"] = i18n.gettext(contacts.PHONE_MESSAGE if raw_phone else "This field is required.")
    if not senders:
        errors["senders"] = i18n.gettext("Choose at least one sender ID, or All sender IDs.")
    if not errors:
        try:
            async with common.db(request).acquire() as conn, conn.transaction():
                existing = await contacts.for_phone(conn, user.partner_id, phone)
                if existing is None:
                    group = await groups.get(conn, user.partner_id, group_id[0] if group_id else 0)
                    await contacts.create(conn, user.partner_id, contacts.ContactInput(phone, (group.id,)),
                                          user_id=user.id, blocked=senders)
                else:
                    await stoplist.block(conn, user.partner_id, [phone], senders, user_id=user.id)
        except NotFound:
            errors["group"] = i18n.gettext("Choose a group.")
        except HeraldError as exc:
            errors[exc.field or "phone"] = i18n.gettext(exc.message)
        else:
            await common.remember_country(request, country)
            await flash(request, N_("%(phone)s is on the Stop List."), phone=phones.display(phone))
            raise web.HTTPSeeOther("/contacts/stop-list")
    return await _add_page(request, values=values, errors=errors, status=400)


async def _remove_page(request: web.Request, numbers: list[str], status: int = 200,
                       error: str = "") -> web.Response:
    rows = await stoplist.numbers(common.db(request), signed_in(request).partner_id, numbers)
    if not rows:
        raise NotFound("no such number")
    senders = sorted({s for r in rows for s in r.senders}, key=lambda s: (s != stoplist.ALL, s.casefold()))
    return render(request, "contacts/stop_remove.html", {
        "rows": rows, "senders": senders, "error": error, "tabs": common.tabs(), "tab": "stoplist",
    }, status=status, active="contacts", title=i18n.gettext("Remove from Stop List"))


@routes.get(r"/contacts/stop-list/{number:\d+}/remove")
@login_required
async def remove_page(request: web.Request) -> web.Response:
    return await _remove_page(request, [str(common.int_param(request, "number"))])


@routes.post("/contacts/stop-list/bulk/remove")
@login_required
async def bulk_remove(request: web.Request) -> web.Response:
    numbers = _numbers((await request.post()).getall("ids", []))
    if not numbers:
        await flash(request, N_("Select at least one number."), "error")
        raise web.HTTPSeeOther("/contacts/stop-list")
    return await _remove_page(request, numbers)


@routes.post("/contacts/stop-list/remove")
@login_required
async def remove(request: web.Request) -> web.Response:
    data = await request.post()
    numbers = _numbers(data.getall("ids", []))
    partner_id = signed_in(request).partner_id
    rows = await stoplist.numbers(common.db(request), partner_id, numbers)
    if not rows:
        raise NotFound("no such number")
    senders = [str(s) for s in data.getall("senders", [])]
    if not senders:
        return await _remove_page(request, numbers, status=400,
                                  error=i18n.gettext("Choose the sender IDs to unblock."))
    lifted = await stoplist.unblock(common.db(request), partner_id, [r.msisdn for r in rows], senders)
    await flash(request, i18n.ngettext("%(num)s block lifted.", "%(num)s blocks lifted.", lifted))
    raise web.HTTPSeeOther("/contacts/stop-list")


async def _export(request: web.Request, rows_of, fmt: str) -> web.StreamResponse:
    header = [i18n.gettext("Phone"), i18n.gettext("First name"), i18n.gettext("Last name"),
              i18n.gettext("Blocked sender IDs"), i18n.gettext("Blocked by"), i18n.gettext("Last blocked")]
    all_label = i18n.gettext("All sender IDs")

    async def rows():
        async for b in rows_of:
            yield [b.display_phone, b.first_name, b.last_name,
                   ", ".join(all_label if s == stoplist.ALL else s for s in b.senders),
                   ", ".join(i18n.gettext(SOURCES.get(s, s)) for s in b.sources),
                   b.last_at.strftime("%Y-%m-%d %H:%M")]

    return await common.table_download(request, fmt, "stop-list", header, rows())


@routes.get("/contacts/stop-list/export")
@login_required
async def export_list(request: web.Request) -> web.StreamResponse:
    prefix = phones.prefix_filter(request.query.get("phone", "")[:200])
    sender = request.query.get("sender", "").replace("\x00", "")[:200]
    partner_id = signed_in(request).partner_id
    rows = stoplist.stream(common.db(request), partner_id, phone=prefix or "", sender=sender)
    if prefix is None:
        rows = _none()
    return await _export(request, rows, common.fmt_of(request.query.get("format")))


async def _none():
    return
    yield


async def _listed(rows):
    for row in rows:
        yield row


@routes.get(r"/contacts/stop-list/{number:\d+}/export")
@login_required
async def export_one(request: web.Request) -> web.StreamResponse:
    rows = await stoplist.numbers(common.db(request), signed_in(request).partner_id,
                                  [str(common.int_param(request, "number"))])
    if not rows:
        raise NotFound("no such number")
    return await _export(request, _listed(rows), common.fmt_of(request.query.get("format")))


@routes.post("/contacts/stop-list/bulk/export")
@login_required
async def bulk_export(request: web.Request) -> web.StreamResponse:
    numbers = _numbers((await request.post()).getall("ids", []))
    rows = await stoplist.numbers(common.db(request), signed_in(request).partner_id, numbers)
    if not rows:
        raise NotFound("no such number")
    return await _export(request, _listed(rows), "xlsx")
