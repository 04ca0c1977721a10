"""Contacts (guide §6.1): the table, add and edit, group moves, the stop list, export, table settings.

The table's columns are the partner's fields (system, built-in, custom: see
:mod:`contacts.fields`), so its :class:`~portal.tables.TableSpec` is built per
request. Actions that need a choice (a group, sender IDs) or a confirmation
(delete) go through one small page, ``/contacts/action/<action>``, reached
from a row's hover actions (GET with ``ids``) or from the bulk bar (POST of
the checked ``ids``); it posts back to itself to act.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from aiohttp import web

from config.errors import Conflict, HeraldError, Invalid, NotFound
from contacts import contacts, export, fields, groups, phones, stoplist
from contacts.contacts import ContactFilter
from contacts.fields import FieldDef
from portal import accounts, i18n, tables
from portal.auth import login_required, signed_in
from portal.i18n import N_
from portal.pages import contacts_common as common
from portal.render import flash, render

routes = web.RouteTableDef()
TABLE_ID = "contacts"
ACTIONS = {
    "add-group": N_("Add to group"),
    "remove-group": N_("Remove from group"),
    "move-group": N_("Move to group"),
    "stop": N_("Move to Stop List"),
    "delete": N_("Delete"),
}
BULK = (
    *(tables.BulkAction(key, label, f"/contacts/bulk/{key}", danger=key == "delete")
      for key, label in ACTIONS.items()),
    tables.BulkAction("export", N_("Export"), "/contacts/bulk/export"),
)
GENDER_CHOICES = tuple(fields.GENDERS.items())


# The table

def _label(spec: FieldDef) -> tuple[str, bool]:
    return spec.label, spec.translate


def table_spec(all_fields: list[FieldDef], group_list: list[groups.Group],
               users: Mapping[int, str]) -> tables.TableSpec:
    columns = []
    filters = [tables.Filter("phone", N_("Phone starts with"))]
    for spec in all_fields:
        label, translate = _label(spec)
        columns.append(tables.Column(spec.key, label, hideable=spec.key != "phone",
                                     default=spec.key not in ("comments", "birth_date", "gender", "user", "updated"),
                                     translate=translate))
        if spec.key == "groups":
            filters.append(tables.Filter("group", N_("Group"), "select",
                                         tuple((str(g.id), i18n.gettext("Stop List") if g.is_stop_list
                                                else g.name) for g in group_list),
                                         translate_choices=False))
        elif spec.key in ("first_name", "last_name", "comments"):
            filters.append(tables.Filter(spec.key, label, translate=translate))
        elif spec.key == "gender":
            filters.append(tables.Filter("gender", label, "select", GENDER_CHOICES, translate=translate))
        elif spec.key in ("birth_date", "created", "updated"):
            filters.append(tables.Filter(spec.key, label, "date", translate=translate))
        elif spec.key == "user":
            filters.append(tables.Filter("user", N_("User"), "select",
                                         tuple((str(k), v) for k, v in users.items()),
                                         translate_choices=False))
        elif spec.kind == "custom":
            if spec.data_type == "boolean":
                filters.append(tables.Filter(spec.key, label, "select",
                                             (("yes", N_("Yes")), ("no", N_("No"))), translate=False))
            elif spec.data_type == "date":
                filters.append(tables.Filter(spec.key, label, "date", translate=False))
            else:
                filters.append(tables.Filter(spec.key, label, translate=False))
    columns.append(tables.Column("blocked", N_("Blocked sender IDs")))
    return tables.TableSpec(
        id=TABLE_ID, label=N_("Contacts"), columns=tuple(columns), filters=tuple(filters),
        bulk_actions=BULK, row_actions=True, sort_key=lambda c: (c.id,), row_id=lambda c: c.id,
    )


def contact_filter(values: Mapping[str, str], all_fields: list[FieldDef]) -> ContactFilter:
    """The query's filters as a ContactFilter; a value no contact can have matches nothing."""
    nothing = False
    phone = phones.prefix_filter(values.get("phone", ""))
    if phone is None:
        nothing, phone = True, ""
    group_ids: tuple[int, ...] = ()
    if values.get("group"):
        group_ids = (int(values["group"]),)
    custom: dict[str, Any] = {}
    dates: dict[str, date | None] = {}
    for key in ("birth_date", "created", "updated"):
        try:
            dates[key] = fields.parse_date(values.get(key)) if values.get(key) else None
        except ValueError:
            dates[key], nothing = None, True
    for spec in fields.custom_fields(all_fields):
        raw = values.get(spec.key, "")
        if not raw:
            continue
        try:
            custom[spec.variable] = fields.parse_value(spec.data_type, raw)
        except ValueError:
            nothing = True
    user = values.get("user") or None
    return ContactFilter(
        phone=phone, group_ids=group_ids, first_name=values.get("first_name", ""),
        last_name=values.get("last_name", ""), comments=values.get("comments", ""),
        gender=values.get("gender", ""), birth_date=dates["birth_date"], created=dates["created"],
        updated=dates["updated"], user_id=int(user) if user else None, custom=custom, nothing=nothing,
    )


async def _users(request: web.Request) -> dict[int, str]:
    rows = await common.db(request).fetch(
        """SELECT id, coalesce(nullif(trim(first_name || ' ' || last_name), ''), email) AS name
           FROM users WHERE partner_id = $1 ORDER BY id""", signed_in(request).partner_id)
    return {r["id"]: r["name"] for r in rows}


async def _setup(request: web.Request):
    partner_id = signed_in(request).partner_id
    conn = common.db(request)
    all_fields = await fields.list_fields(conn, partner_id)
    group_list = await groups.all_groups(conn, partner_id)
    users = await _users(request)
    return all_fields, group_list, users


@routes.get("/contacts")
@login_required
async def contact_list(request: web.Request) -> web.Response:
    user = signed_in(request)
    all_fields, group_list, users = await _setup(request)
    spec = table_spec(all_fields, group_list, users)

    async def fetch(*, filters, after, before, limit):
        flt = contact_filter(filters, all_fields)
        return await contacts.list_page(common.db(request), user.partner_id, flt, after=after,
                                        before=before, limit=limit)

    view = await tables.load(request, spec, fetch, prefs=tables.table_prefs(user.ui_prefs, TABLE_ID))
    export_query = {k: v for k, v in view.filters.items() if v}
    return render(request, "contacts/list.html", {
        "view": view, "tabs": common.tabs(), "tab": "contacts", "fields": {f.key: f for f in all_fields},
        "group_names": {g.id: g for g in group_list}, "users": users,
        "export_query": export_query, "genders": fields.GENDERS,
        "display": fields.display_value,
    }, active="contacts", title=i18n.gettext("Contacts"))


# Add and edit

def _form_values(data: Mapping[str, Any], all_fields: list[FieldDef]) -> dict[str, Any]:
    values: dict[str, Any] = {"phone": str(data.get("phone", ""))[:100]}
    for spec in all_fields:
        if spec.kind != "system":
            values[spec.key] = str(data.get(spec.key, ""))[:2000]
    return values


def _contact_values(contact: contacts.Contact, all_fields: list[FieldDef]) -> dict[str, Any]:
    values: dict[str, Any] = {"phone": contact.display_phone}
    for spec in all_fields:
        if spec.kind == "builtin":
            value = getattr(contact, spec.key)
            values[spec.key] = value.isoformat() if isinstance(value, date) else (value or "")
        elif spec.kind == "custom":
            value = contact.fields.get(spec.variable)
            if spec.data_type == "boolean":
                values[spec.key] = "" if value is None else ("yes" if value else "no")
            else:
                values[spec.key] = fields.display_value(spec.data_type, value)
    return values


async def _render_form(request: web.Request, *, contact: contacts.Contact | None,
                       values: Mapping[str, Any], chosen_groups: list[int], blocked: list[str],
                       errors: Mapping[str, str], country: str | None, status: int = 200,
                       form_error: str = "") -> web.Response:
    all_fields, group_list, _ = await _setup(request)
    return render(request, "contacts/form.html", {
        "contact": contact, "values": values, "chosen_groups": chosen_groups, "blocked": blocked,
        "errors": {k: i18n.gettext(v) for k, v in errors.items()}, "form_error": form_error,
        "fields": [f for f in all_fields if f.kind != "system"], "groups": group_list,
        "senders": await common.sender_choices(request, blocked), "country": country,
        "countries": common.country_choices(), "genders": fields.GENDERS,
        "tabs": common.tabs(), "tab": "contacts",
    }, status=status, active="contacts",
        title=i18n.gettext("Edit contact") if contact else i18n.gettext("Add contact"))


@routes.get("/contacts/new")
@login_required
async def new_contact(request: web.Request) -> web.Response:
    stop = request.query.get("stop") == "1"
    group_ids = []
    if stop:
        group_ids = [(await groups.stop_list_group(common.db(request), signed_in(request).partner_id)).id]
    return await _render_form(request, contact=None, values={}, chosen_groups=group_ids,
                              blocked=[stoplist.ALL] if stop else [], errors={},
                              country=await common.user_country(request))


async def _posted(request: web.Request):
    data = await request.post()
    all_fields, _, _ = await _setup(request)
    values = _form_values(data, all_fields)
    country = common.clean_country(data.get("country"))
    chosen = [str(v) for v in data.getall("groups", [])]
    blocked = stoplist.clean_senders([str(v) for v in data.getall("blocked", [])])
    data_in, errors = contacts.clean(values, all_fields, chosen, country)
    return data, all_fields, values, country, common.ids_of(chosen), blocked, data_in, errors


@routes.post("/contacts")
@login_required
async def create_contact(request: web.Request) -> web.Response:
    user = signed_in(request)
    _, _, values, country, chosen, blocked, data_in, errors = await _posted(request)
    if data_in is not None:
        try:
            async with common.db(request).acquire() as conn:
                made = await contacts.create(conn, user.partner_id, data_in, user_id=user.id,
                                             blocked=blocked)
        except HeraldError as exc:
            errors = {exc.field or "": exc.message}
        else:
            await common.remember_country(request, country)
            await flash(request, N_("The contact %(phone)s is added."), phone=made.display_phone)
            raise web.HTTPSeeOther("/contacts")
    form_error = errors.pop("", "")
    return await _render_form(request, contact=None, values=values, chosen_groups=chosen,
                              blocked=blocked, errors=errors, country=country, status=400,
                              form_error=i18n.gettext(form_error) if form_error else "")


@routes.get(r"/contacts/{id:\d+}/edit")
@login_required
async def edit_contact(request: web.Request) -> web.Response:
    user = signed_in(request)
    contact = await contacts.get(common.db(request), user.partner_id, common.int_param(request, "id"))
    all_fields, _, _ = await _setup(request)
    return await _render_form(request, contact=contact, values=_contact_values(contact, all_fields),
                              chosen_groups=contact.group_ids, blocked=contact.blocked, errors={},
                              country=await common.user_country(request))


@routes.post(r"/contacts/{id:\d+}")
@login_required
async def update_contact(request: web.Request) -> web.Response:
    user = signed_in(request)
    contact = await contacts.get(common.db(request), user.partner_id, common.int_param(request, "id"))
    _, _, values, country, chosen, blocked, data_in, errors = await _posted(request)
    if data_in is not None:
        try:
            async with common.db(request).acquire() as conn:
                await contacts.update(conn, user.partner_id, contact.id, data_in, user_id=user.id,
                                      blocked=blocked)
        except HeraldError as exc:
            errors = {exc.field or "": exc.message}
        else:
            await flash(request, N_("The contact is saved."))
            raise web.HTTPSeeOther("/contacts")
    form_error = errors.pop("", "")
    return await _render_form(request, contact=contact, values=values, chosen_groups=chosen,
                              blocked=blocked, errors=errors, country=country, status=400,
                              form_error=i18n.gettext(form_error) if form_error else "")


# Actions on one or more contacts

def _action(request: web.Request) -> str:
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise NotFound("no such action")
    return action


async def _action_page(request: web.Request, action: str, ids: list[int], *, error: str = "",
                       status: int = 200) -> web.Response:
    user = signed_in(request)
    conn = common.db(request)
    numbers = await contacts.phones_of(conn, user.partner_id, ids)
    if not numbers:
        raise NotFound("no such contact")
    owned = await conn.fetch("SELECT id, group_ids FROM contacts WHERE partner_id = $1 AND id = ANY($2::bigint[])",
                             user.partner_id, ids)
    ids = [r["id"] for r in owned]
    group_list = await groups.all_groups(conn, user.partner_id)
    if action == "remove-group":
        present = {g for r in owned for g in r["group_ids"]}
        group_list = [g for g in group_list if g.id in present]
    return render(request, "contacts/action.html", {
        "action": action, "action_label": ACTIONS[action], "ids": ids, "numbers": numbers[:10],
        "count": len(ids), "groups": group_list, "senders": await common.sender_choices(request),
        "error": error, "tabs": common.tabs(), "tab": "contacts",
    }, status=status, active="contacts", title=i18n.gettext(ACTIONS[action]))


@routes.get("/contacts/action/{action}")
@login_required
async def action_page(request: web.Request) -> web.Response:
    return await _action_page(request, _action(request), common.ids_of(request.query.getall("ids", [])))


@routes.post("/contacts/bulk/{action}")
@login_required
async def bulk_action(request: web.Request) -> web.StreamResponse:
    action = request.match_info["action"]
    ids = common.ids_of((await request.post()).getall("ids", []))
    if action == "export":
        if not ids or not await contacts.phones_of(common.db(request), signed_in(request).partner_id, ids):
            raise NotFound("no such contact")
        return await _export(request, ContactFilter(ids=tuple(ids)), "xlsx")
    _action(request)
    if not ids:
        await flash(request, N_("Select at least one contact."), "error")
        raise web.HTTPSeeOther("/contacts")
    return await _action_page(request, action, ids)


@routes.post("/contacts/action/{action}")
@login_required
async def do_action(request: web.Request) -> web.Response:
    action = _action(request)
    user = signed_in(request)
    data = await request.post()
    ids = common.ids_of(data.getall("ids", []))
    if not ids or not await contacts.phones_of(common.db(request), user.partner_id, ids):
        raise NotFound("no such contact")
    async with common.db(request).acquire() as conn:
        try:
            if action == "delete":
                done = await contacts.delete(conn, user.partner_id, ids)
                await flash(request, i18n.ngettext("%(num)s contact deleted.", "%(num)s contacts deleted.", done))
            elif action == "stop":
                senders = [str(s) for s in data.getall("senders", [])]
                done = await contacts.move_to_stop_list(conn, user.partner_id, ids, senders, user_id=user.id)
                await flash(request, i18n.ngettext(
                    "%(num)s contact is on the Stop List for the chosen sender IDs.",
                    "%(num)s contacts are on the Stop List for the chosen sender IDs.", done))
            else:
                group_id = common.ids_of([data.get("group", "")])
                if not group_id:
                    raise Invalid(N_("Choose a group."), field="group")
                call = {"add-group": contacts.add_to_group, "remove-group": contacts.remove_from_group,
                        "move-group": contacts.move_to_group}[action]
                done = await call(conn, user.partner_id, ids, group_id[0], user_id=user.id)
                if action == "remove-group" and done < len(ids):
                    await flash(request, N_("Contacts in no other group stay in it: a contact is always in a group."), "error")
                await flash(request, i18n.ngettext("%(num)s contact changed.", "%(num)s contacts changed.", done))
        except NotFound:
            return await _action_page(request, action, ids, error=i18n.gettext("Choose a group."), status=400)
        except (Invalid, Conflict) as exc:
            return await _action_page(request, action, ids, error=i18n.gettext(exc.message), status=400)
    raise web.HTTPSeeOther("/contacts")


# Export

async def _export(request: web.Request, flt: ContactFilter, fmt: str) -> web.StreamResponse:
    user = signed_in(request)
    all_fields, group_list, users = await _setup(request)
    names = {g.id: (i18n.gettext("Stop List") if g.is_stop_list else g.name) for g in group_list}
    header = export.contact_header(all_fields, i18n.gettext)
    all_label = i18n.gettext("All sender IDs")
    async with common.db(request).acquire() as conn:
        async def rows():
            async for contact in contacts.stream(conn, user.partner_id, flt):
                yield export.contact_cells(contact, all_fields, names, users, all_senders=all_label)

        return await common.table_download(request, fmt, "contacts", header, rows())


@routes.get("/contacts/export")
@login_required
async def export_contacts(request: web.Request) -> web.StreamResponse:
    all_fields, group_list, users = await _setup(request)
    spec = table_spec(all_fields, group_list, users)
    query = request.rel_url.query
    values = {}
    for flt in spec.filters:
        value = query.get(flt.key, "").replace("\x00", "").strip()[:200]
        if flt.kind == "select" and value not in {v for v, _ in flt.choices}:
            value = ""
        values[flt.key] = value
    flt = contact_filter(values, all_fields)
    ids = common.ids_of(query.getall("ids", []))
    if query.getall("ids", []):
        if not ids or not await contacts.phones_of(common.db(request), signed_in(request).partner_id, ids):
            raise NotFound("no such contact")
        flt = ContactFilter(ids=tuple(ids))
    return await _export(request, flt, common.fmt_of(query.get("format")))


# Table settings: Fields Control and Create field

async def _settings_page(request: web.Request, *, errors: Mapping[str, str] | None = None,
                         status: int = 200) -> web.Response:
    user = signed_in(request)
    all_fields, group_list, users = await _setup(request)
    spec = table_spec(all_fields, group_list, users)
    layout = tables.column_layout(spec, tables.table_prefs(user.ui_prefs, TABLE_ID))
    by_key = {f.key: f for f in all_fields}
    rows = [(s, by_key.get(s.column.key)) for s in layout]
    return render(request, "contacts/settings.html", {
        "rows": rows, "errors": errors or {}, "type_labels": fields.TYPE_LABELS,
        "tabs": common.tabs(), "tab": "contacts",
    }, status=status, active="contacts", title=i18n.gettext("Table settings"))


@routes.get("/contacts/settings")
@login_required
async def settings_page(request: web.Request) -> web.Response:
    return await _settings_page(request)


@routes.post("/contacts/settings")
@login_required
async def save_settings(request: web.Request) -> web.Response:
    user = signed_in(request)
    data = await request.post()
    all_fields, group_list, users = await _setup(request)
    spec = table_spec(all_fields, group_list, users)
    order = [str(v) for v in data.getall("order", [])]
    prefs = tables.clean_prefs([c.key for c in spec.columns], order,
                               [str(v) for v in data.getall("visible", [])])
    errors: dict[str, str] = {}
    async with common.db(request).acquire() as conn:
        for item in all_fields:
            if not item.editable or f"name:{item.key}" not in data:
                continue
            name = str(data.get(f"name:{item.key}", ""))
            required = data.get(f"required:{item.key}") is not None
            label = i18n.gettext(item.label) if item.translate else item.label
            if name.strip() == label and required == item.required:
                continue
            try:
                await fields.update_field(conn, user.partner_id, item.key, name=name, required=required)
            except HeraldError as exc:
                errors[item.key] = i18n.gettext(exc.message)
        await fields.reorder(conn, user.partner_id, order)
        await accounts.save_ui_pref(conn, user.id, tables.PREFS_SECTION, TABLE_ID, prefs)
    if errors:
        return await _settings_page(request, errors=errors, status=400)
    await flash(request, N_("The table settings are saved."))
    raise web.HTTPSeeOther("/contacts")


FIELD_TYPES = tuple(fields.TYPE_LABELS.items())


def _field_form(data: Mapping[str, Any] | None = None):
    from portal.forms import Field, Form

    specs = (
        Field("name", N_("Field name"), required=True, max_length=fields.NAME_MAX,
              help=N_("Shown as the column's title. Its variable, for campaign texts, is made from it.")),
        Field("data_type", N_("Data type"), "select", required=True, choices=FIELD_TYPES),
        Field("required", N_("Required for new and edited contacts"), "checkbox"),
    )
    return Form(specs, data, initial={"data_type": "text"})


def _render_field_form(request: web.Request, form, status: int = 200) -> web.Response:
    preview = ""
    if form.values.get("name"):
        try:
            preview = "{" + fields.derive_variable(str(form.values["name"])) + "}"
        except Invalid:
            preview = ""
    return render(request, "contacts/field_new.html", {
        "form": form, "variable": preview, "tabs": common.tabs(), "tab": "contacts",
    }, status=status, active="contacts", title=i18n.gettext("Create field"))


@routes.get("/contacts/settings/new-field")
@login_required
async def new_field(request: web.Request) -> web.Response:
    return _render_field_form(request, _field_form())


@routes.post("/contacts/fields")
@login_required
async def create_field(request: web.Request) -> web.Response:
    form = _field_form(await request.post())
    if form.validate():
        try:
            async with common.db(request).acquire() as conn:
                made = await fields.create_field(conn, signed_in(request).partner_id,
                                                 name=form.cleaned["name"], data_type=form.cleaned["data_type"],
                                                 required=form.cleaned["required"])
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("The field %(name)s is created: use %(variable)s in campaign texts."),
                        name=made.label, variable=made.placeholder)
            raise web.HTTPSeeOther("/contacts/settings")
    return _render_field_form(request, form, status=400)


def _field_key(request: web.Request) -> str:
    key = request.match_info["key"]
    if len(key) > 30:
        raise NotFound("no such field")
    return key


@routes.get("/contacts/fields/{key}/delete")
@login_required
async def confirm_delete_field(request: web.Request) -> web.Response:
    all_fields = await fields.list_fields(common.db(request), signed_in(request).partner_id)
    item = fields.field_by_key(all_fields, _field_key(request))
    if item.kind != "custom":
        raise NotFound("no such field")
    return render(request, "contacts/field_delete.html", {
        "field": item, "tabs": common.tabs(), "tab": "contacts",
    }, active="contacts", title=i18n.gettext("Delete field"))


@routes.post("/contacts/fields/{key}/delete")
@login_required
async def delete_field(request: web.Request) -> web.Response:
    key = _field_key(request)
    async with common.db(request).acquire() as conn:
        all_fields = await fields.list_fields(conn, signed_in(request).partner_id)
        item = fields.field_by_key(all_fields, key)
        if item.kind != "custom":
            raise NotFound("no such field")
        await fields.delete_field(conn, signed_in(request).partner_id, key)
    await flash(request, N_("The field %(name)s and its values are deleted."), name=item.label)
    raise web.HTTPSeeOther("/contacts/settings")
