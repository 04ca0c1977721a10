"""Groups of contacts (guide §6.2): the table with counts, add, edit, nest, delete, export."""

from __future__ import annotations

from aiohttp import web

from config.errors import HeraldError, NotFound
from contacts import groups
from contacts.contacts import ContactFilter
from portal import i18n, tables
from portal.auth import login_required, signed_in
from portal.forms import Field, Form
from portal.i18n import N_
from portal.pages import contacts_common as common
from portal.render import flash, render

routes = web.RouteTableDef()
TABLE = tables.TableSpec(
    id="contact_groups", label=N_("Groups"),
    columns=(
        tables.Column("name", N_("Name"), hideable=False),
        tables.Column("description", N_("Description")),
        tables.Column("parent", N_("Inside")),
        tables.Column("count", N_("Contacts"), numeric=True),
        tables.Column("created", N_("Created")),
    ),
    filters=(tables.Filter("q", N_("Search by name")),),
    bulk_actions=(
        tables.BulkAction("export", N_("Export"), "/contacts/groups/bulk/export"),
        tables.BulkAction("delete", N_("Delete"), "/contacts/groups/bulk/delete", danger=True),
    ),
    row_actions=True, sort_key=lambda g: g.sort_key, row_id=lambda g: g.id,
)


def _fields(parents: list[tuple[str, str]]) -> tuple[Field, ...]:
    return (
        Field("name", N_("Name"), required=True, max_length=groups.NAME_MAX),
        Field("description", N_("Description"), "textarea", max_length=groups.DESCRIPTION_MAX),
        # group names are the partner's own: shown as written, the rest translated now
        Field("parent_id", i18n.gettext("Inside the group"), "select",
              choices=[("", i18n.gettext("None: a top group")), *parents], translate=False),
    )


async def _parents(request: web.Request, exclude: int | None = None) -> list[tuple[str, str]]:
    found = await groups.all_groups(common.db(request), signed_in(request).partner_id)
    return [(str(g.id), g.name) for g in found if not g.is_stop_list and g.id != exclude]


@routes.get("/contacts/groups")
@login_required
async def group_list(request: web.Request) -> web.Response:
    user = signed_in(request)
    conn = common.db(request)

    async def fetch(*, filters, after, before, limit):
        return await groups.list_page(conn, user.partner_id, search=filters["q"], after=after,
                                      before=before, limit=limit)

    view = await tables.load(request, TABLE, fetch, prefs=tables.table_prefs(user.ui_prefs, TABLE.id))
    names = {g.id: g.name for g in await groups.all_groups(conn, user.partner_id)}
    return render(request, "contacts/groups.html", {
        "view": view, "names": names, "tabs": common.tabs(), "tab": "groups",
    }, active="contacts", title=i18n.gettext("Groups"))


def _render(request: web.Request, form: Form, group: groups.Group | None, status: int = 200) -> web.Response:
    return render(request, "contacts/group_form.html", {
        "form": form, "group": group, "tabs": common.tabs(), "tab": "groups",
        "next": request.query.get("next", ""),
    }, status=status, active="contacts", title=i18n.gettext("Edit group") if group else i18n.gettext("Add group"))


@routes.get("/contacts/groups/new")
@login_required
async def new_group(request: web.Request) -> web.Response:
    return _render(request, Form(_fields(await _parents(request))), None)


@routes.post("/contacts/groups")
@login_required
async def create_group(request: web.Request) -> web.Response:
    user = signed_in(request)
    form = Form(_fields(await _parents(request)), await request.post())
    if form.validate():
        try:
            async with common.db(request).acquire() as conn:
                made = await groups.create(conn, user.partner_id, name=form.cleaned["name"],
                                           description=form.cleaned["description"],
                                           parent_id=int(form.cleaned["parent_id"]) if form.cleaned["parent_id"] else None,
                                           user_id=user.id)
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("The group %(name)s is added."), name=made.name)
            raise web.HTTPSeeOther("/contacts/groups")
    return _render(request, form, None, status=400)


async def _group(request: web.Request) -> groups.Group:
    return await groups.get(common.db(request), signed_in(request).partner_id, common.int_param(request, "id"))


@routes.get(r"/contacts/groups/{id:\d+}/edit")
@login_required
async def edit_group(request: web.Request) -> web.Response:
    group = await _group(request)
    if group.is_stop_list:
        raise NotFound("the system group is not edited here")
    form = Form(_fields(await _parents(request, group.id)), initial={
        "name": group.name, "description": group.description,
        "parent_id": str(group.parent_id) if group.parent_id else ""})
    return _render(request, form, group)


@routes.post(r"/contacts/groups/{id:\d+}")
@login_required
async def update_group(request: web.Request) -> web.Response:
    group = await _group(request)
    if group.is_stop_list:
        raise NotFound("the system group is not edited here")
    user = signed_in(request)
    form = Form(_fields(await _parents(request, group.id)), await request.post())
    if form.validate():
        parent = int(form.cleaned["parent_id"]) if form.cleaned["parent_id"] else None
        try:
            async with common.db(request).acquire() as conn:
                await groups.update(conn, user.partner_id, group.id, name=form.cleaned["name"],
                                    description=form.cleaned["description"])
                if parent != group.parent_id:
                    await groups.nest(conn, user.partner_id, group.id, parent)
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("The group is saved."))
            raise web.HTTPSeeOther("/contacts/groups")
    return _render(request, form, group, status=400)


@routes.get(r"/contacts/groups/{id:\d+}/move")
@login_required
async def move_page(request: web.Request) -> web.Response:
    group = await _group(request)
    if group.is_stop_list:
        raise NotFound("the system group cannot be nested")
    return render(request, "contacts/group_move.html", {
        "group": group, "parents": await _parents(request, group.id), "tabs": common.tabs(), "tab": "groups",
        "error": "",
    }, active="contacts", title=i18n.gettext("Move group"))


@routes.post(r"/contacts/groups/{id:\d+}/move")
@login_required
async def move_group(request: web.Request) -> web.Response:
    group = await _group(request)
    data = await request.post()
    raw = str(data.get("parent_id", ""))
    parent = common.ids_of([raw])
    if raw and not parent:
        raise NotFound("no such group")
    try:
        async with common.db(request).acquire() as conn:
            await groups.nest(conn, signed_in(request).partner_id, group.id, parent[0] if parent else None)
    except HeraldError as exc:
        if exc.http_status == 404:
            raise
        return render(request, "contacts/group_move.html", {
            "group": group, "parents": await _parents(request, group.id), "tabs": common.tabs(),
            "tab": "groups", "error": i18n.gettext(exc.message),
        }, status=400, active="contacts", title=i18n.gettext("Move group"))
    await flash(request, N_("The group is moved."))
    raise web.HTTPSeeOther("/contacts/groups")


async def _delete_page(request: web.Request, ids: list[int], status: int = 200, error: str = "") -> web.Response:
    conn = common.db(request)
    partner_id = signed_in(request).partner_id
    owned = await groups.owned_ids(conn, partner_id, ids)
    if not owned:
        raise NotFound("no such group")
    chosen = [await groups.get(conn, partner_id, g) for g in owned]
    return render(request, "contacts/group_delete.html", {
        "groups": chosen, "ids": owned, "alone": await groups.contacts_only_in(conn, partner_id, owned),
        "stop_list": any(g.is_stop_list for g in chosen),
        "templated": await groups.reply_template_groups(conn, partner_id, owned),
        "error": error, "tabs": common.tabs(), "tab": "groups",
    }, status=status, active="contacts", title=i18n.gettext("Delete groups"))


@routes.get(r"/contacts/groups/{id:\d+}/delete")
@login_required
async def confirm_delete(request: web.Request) -> web.Response:
    return await _delete_page(request, [common.int_param(request, "id")])


@routes.post("/contacts/groups/bulk/delete")
@login_required
async def bulk_delete(request: web.Request) -> web.Response:
    ids = common.ids_of((await request.post()).getall("ids", []))
    if not ids:
        await flash(request, N_("Select at least one group."), "error")
        raise web.HTTPSeeOther("/contacts/groups")
    return await _delete_page(request, ids)


@routes.post("/contacts/groups/delete")
@login_required
async def delete_groups(request: web.Request) -> web.Response:
    ids = common.ids_of((await request.post()).getall("ids", []))
    try:
        async with common.db(request).acquire() as conn:
            deleted, gone = await groups.delete(conn, signed_in(request).partner_id, ids)
    except HeraldError as exc:
        if exc.http_status == 404:
            raise
        return await _delete_page(request, ids, status=400, error=i18n.gettext(exc.message))
    await flash(request, i18n.ngettext("%(num)s group deleted.", "%(num)s groups deleted.", deleted))
    if gone:
        await flash(request, i18n.ngettext("%(num)s contact in no other group was deleted with it.",
                                           "%(num)s contacts in no other group were deleted with them.", gone))
    raise web.HTTPSeeOther("/contacts/groups")


async def _export(request: web.Request, ids: list[int], fmt: str) -> web.StreamResponse:
    from portal.pages.contacts import _export as export_contacts

    owned = await groups.owned_ids(common.db(request), signed_in(request).partner_id, ids)
    if not owned:
        raise NotFound("no such group")
    return await export_contacts(request, ContactFilter(group_ids=tuple(owned)), fmt)


@routes.get(r"/contacts/groups/{id:\d+}/export")
@login_required
async def export_group(request: web.Request) -> web.StreamResponse:
    return await _export(request, [common.int_param(request, "id")], common.fmt_of(request.query.get("format")))


@routes.post("/contacts/groups/bulk/export")
@login_required
async def bulk_export(request: web.Request) -> web.StreamResponse:
    ids = common.ids_of((await request.post()).getall("ids", []))
    return await _export(request, ids, "xlsx")
