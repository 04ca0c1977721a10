"""Users of the partners in the acting partner's subtree: list, create, disable and enable."""

from __future__ import annotations

from aiohttp import web

from accounts import partners, users
from config.errors import Forbidden, HeraldError
from portal import i18n, tables
from portal.admin.common import (
    admin_only,
    badge,
    button,
    db,
    id_pages,
    int_param,
    load_table,
    page,
    scope_of,
)
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash

routes = web.RouteTableDef()
ROLE_LABELS = {"owner_admin": N_("System owner admin"), "reseller_admin": N_("Reseller admin"), "user": N_("User")}
STATUS_LABELS = {"active": N_("Active"), "pending": N_("Waiting for confirmation"), "disabled": N_("Disabled")}
LANGUAGE_CHOICES = [("en", "English"), ("es", "Español"), ("ru", "Русский"), ("tr", "Türkçe")]


async def partner_choices(request: web.Request) -> list[tuple[str, str]]:
    """The acting partner and every partner below it, indented by depth."""
    scope = scope_of(request)
    me = await partners.get_partner(db(request), scope, scope.partner_id)
    below = sorted(await partners.list_partners(db(request), scope, limit=10000), key=lambda p: p.path)
    return [(str(p.id), "\u00a0\u00a0" * (p.depth - me.depth) + p.name) for p in [me, *below]]


def _table(choices: list[tuple[str, str]]) -> tables.TableSpec:
    return tables.TableSpec(
        id="admin_users", label=N_("Users"),
        columns=(
            tables.Column("email", N_("E-mail"), hideable=False),
            tables.Column("name", N_("Name")),
            tables.Column("partner", N_("Partner")),
            tables.Column("role", N_("Role")),
            tables.Column("status", N_("Status")),
            tables.Column("last_login", N_("Last sign-in"), default=False),
        ),
        filters=(tables.Filter("q", N_("Search by e-mail")), tables.Filter("partner", N_("Partner"), "select", choices)),
        row_actions=True, sort_key=lambda u: (u.id,), row_id=lambda u: u.id,
    )


@routes.get("/admin/users")
@admin_only
async def user_list(request: web.Request) -> web.Response:
    scope = scope_of(request)
    choices = await partner_choices(request)
    names = {int(k): v.strip() for k, v in choices}

    async def rows(filters):
        partner_id = int(filters["partner"]) if filters.get("partner") else None
        q = filters.get("q", "").lower()
        found = await users.list_users(db(request), scope, partner_id=partner_id, limit=10000)
        return [u for u in found if q in u.email.lower()]

    view = await load_table(request, _table(choices), id_pages(rows))

    def cells(u: users.User) -> dict:
        return {
            "email": u.email, "name": f"{u.first_name} {u.last_name}".strip(),
            "partner": {"kind": "link", "href": f"/admin/partners/{u.partner_id}", "text": names.get(u.partner_id, "")},
            "role": i18n.gettext(ROLE_LABELS.get(u.role, u.role)),
            "status": badge(i18n.gettext(STATUS_LABELS.get(u.status, u.status)), u.status == "active"),
            "last_login": i18n.format_datetime(u.last_login_at) or None,
        }

    def actions(u: users.User) -> list:
        if u.id == scope.user_id:
            return []
        if u.status == "disabled":
            return [button(f"/admin/users/{u.id}/enable", i18n.gettext("Enable"))]
        return [button(f"/admin/users/{u.id}/disable", i18n.gettext("Disable"), danger=True)]

    new = "/admin/users/new" + (f"?partner={view.filters['partner']}" if view.filters.get("partner") else "")
    return page(request, "admin/list.html", {
        "view": view, "cells": cells, "row_actions": actions,
        "top_actions": [(new, i18n.gettext("New user"))],
    }, active="users", title=i18n.gettext("Users"))


def _fields(choices: list[tuple[str, str]]) -> tuple[Field, ...]:
    return (
        Field("partner_id", N_("Partner"), "select", required=True, choices=choices, translate=False),
        Field("email", N_("E-mail"), "email", required=True, max_length=254, autocomplete="off"),
        Field("password", N_("Password"), "password", required=True, max_length=200, autocomplete="new-password",
              help=N_("At least 8 characters.")),
        Field("first_name", N_("First name"), max_length=60),
        Field("last_name", N_("Last name"), max_length=60),
        Field("language", N_("Language"), "select", required=True, choices=LANGUAGE_CHOICES, translate=False),
    )


@routes.get("/admin/users/new")
@routes.post("/admin/users/new")
@admin_only
async def user_new(request: web.Request) -> web.Response:
    data = await request.post() if request.method == "POST" else None
    choices = await partner_choices(request)
    form = Form(_fields(choices), data, initial={"partner_id": request.query.get("partner", ""), "language": "en"})
    if data is not None and form.validate():
        values = dict(form.cleaned)
        partner_id = int(values.pop("partner_id"))
        try:
            async with db(request).acquire() as conn:
                created = await users.create_user(conn, scope_of(request), partner_id, users.NewUser(**values))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("User %(email)s created."), email=created.email)
            raise web.HTTPSeeOther(f"/admin/users?partner={partner_id}")
    return page(request, "admin/form.html", {"form": form, "action": "/admin/users/new", "back": "/admin/users"},
                active="users", title=i18n.gettext("New user"), status=400 if form.submitted else 200)


async def _status(request: web.Request, status: str) -> web.Response:
    scope, user_id = scope_of(request), int_param(request, "id")
    if user_id == scope.user_id:
        raise Forbidden("You cannot disable your own account.")
    changed = await users.set_user_status(db(request), scope, user_id, status)
    await flash(request, N_("%(email)s is disabled.") if status == "disabled" else N_("%(email)s is enabled."),
                email=changed.email)
    raise web.HTTPSeeOther("/admin/users")


@routes.post("/admin/users/{id}/disable")
@admin_only
async def user_disable(request: web.Request) -> web.Response:
    return await _status(request, "disabled")


@routes.post("/admin/users/{id}/enable")
@admin_only
async def user_enable(request: web.Request) -> web.Response:
    return await _status(request, "active")
