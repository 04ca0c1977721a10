"""Portals: the white-label sites of the system owner and of resellers."""

from __future__ import annotations

import re

from aiohttp import web

from accounts import portals
from config.errors import HeraldError, Invalid
from portal import accounts, i18n, security, tables
from portal.admin.common import (
    admin_only,
    badge,
    db,
    id_pages,
    int_param,
    link,
    load_table,
    page,
    scope_of,
)
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash

routes = web.RouteTableDef()
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _color(value: str) -> str:
    if not _COLOR.match(value):
        raise Invalid("Use a colour like #2563eb.")
    return value.lower()


def _languages(value: str) -> list[str]:
    codes = [c.strip().lower() for c in value.replace(";", ",").split(",") if c.strip()]
    if not codes or any(c not in portals.LANGUAGES for c in codes):
        raise Invalid("List language codes among en, es, ru, tr, separated by commas.")
    return list(dict.fromkeys(codes))


FIELDS = (
    Field("name", N_("Name"), required=True, max_length=100),
    Field("host", N_("Host name"), required=True, max_length=253, placeholder="sms.example.com",
          help=N_("The address users open; each portal has its own.")),
    Field("logo_url", N_("Logo URL"), "url", max_length=500),
    Field("primary_color", N_("Primary colour"), required=True, max_length=7, placeholder="#2563eb",
          clean=(_color,)),
    Field("support_email", N_("Support e-mail"), "email", max_length=254),
    Field("terms_text", N_("Terms of service"), "textarea", max_length=20000),
    Field("privacy_text", N_("Privacy policy"), "textarea", max_length=20000),
    Field("allow_signup", N_("Allow self-registration"), "checkbox"),
    Field("require_2fa", N_("Require two-factor authentication"), "checkbox"),
    Field("languages", N_("Languages"), required=True, max_length=40, placeholder="en, es, ru, tr",
          help=N_("Codes separated by commas; the first is the default."), clean=(_languages,)),
)

TABLE = tables.TableSpec(
    id="admin_portals", label=N_("Portals"),
    columns=(
        tables.Column("name", N_("Name"), hideable=False),
        tables.Column("host", N_("Host name")),
        tables.Column("signup", N_("Self-registration")),
        tables.Column("twofa", N_("Two-factor authentication")),
        tables.Column("languages", N_("Languages")),
    ),
    filters=(tables.Filter("q", N_("Search by name or host")),),
    row_actions=True, sort_key=lambda p: (p.id,), row_id=lambda p: p.id,
)


def _cells(p: portals.Portal) -> dict:
    yes, no = i18n.gettext("On"), i18n.gettext("Off")
    return {
        "name": link(f"/admin/portals/{p.id}", p.name), "host": p.host,
        "signup": badge(yes if p.allow_signup else no, p.allow_signup),
        "twofa": badge(yes if p.require_2fa else no, p.require_2fa),
        "languages": ", ".join(p.languages),
    }


@routes.get("/admin/portals")
@admin_only
async def portal_list(request: web.Request) -> web.Response:
    scope = scope_of(request)

    async def rows(filters):
        q = filters.get("q", "").lower()
        return [p for p in await portals.list_portals(db(request), scope)
                if not q or q in p.name.lower() or q in p.host]

    view = await load_table(request, TABLE, id_pages(rows))
    return page(request, "admin/list.html", {
        "view": view, "cells": _cells,
        "row_actions": lambda p: [link(f"/admin/portals/{p.id}", i18n.gettext("Edit"))],
        "top_actions": [("/admin/portals/new", i18n.gettext("New portal"))],
    }, active="portals", title=i18n.gettext("Portals"))


async def _send_sign_in_keys(request: web.Request, portal: portals.Portal) -> int:
    """E-mail an authenticator key to every active user of the portal who has none yet."""
    ids = await db(request).fetch(
        "SELECT id FROM users WHERE portal_id = $1 AND status = 'active' AND NOT totp_enabled ORDER BY id",
        portal.id,
    )
    sent = 0
    for row in ids:
        account = await accounts.load(db(request), row["id"])
        if account is not None:
            await security.mail_new_totp_secret(request.app, portal, account)
            sent += 1
    return sent


def _values(form: Form) -> dict:
    values = dict(form.cleaned)
    langs = values["languages"]
    values["default_language"] = langs[0]
    return values


@routes.get("/admin/portals/new")
@routes.post("/admin/portals/new")
@admin_only
async def portal_new(request: web.Request) -> web.Response:
    data = await request.post() if request.method == "POST" else None
    form = Form(FIELDS, data, initial={"primary_color": "#2563eb", "languages": "en, es, ru, tr"})
    if data is not None and form.validate():
        try:
            async with db(request).acquire() as conn:
                created = await portals.create_portal(conn, scope_of(request), portals.NewPortal(**_values(form)))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Portal %(name)s created."), name=created.name)
            raise web.HTTPSeeOther("/admin/portals")
    return page(request, "admin/form.html", {"form": form, "action": "/admin/portals/new", "back": "/admin/portals"},
                active="portals", title=i18n.gettext("New portal"), status=400 if form.submitted else 200)


@routes.get("/admin/portals/{id}")
@routes.post("/admin/portals/{id}")
@admin_only
async def portal_edit(request: web.Request) -> web.Response:
    scope, portal_id = scope_of(request), int_param(request, "id")
    current = await portals.get_portal(db(request), scope, portal_id)
    data = await request.post() if request.method == "POST" else None
    initial = {f.name: getattr(current, f.name) for f in FIELDS if f.name != "languages"}
    initial["languages"] = ", ".join(
        [current.default_language] + [x for x in current.languages if x != current.default_language])
    form = Form(FIELDS, data, initial=initial)
    if data is not None and form.validate():
        try:
            async with db(request).acquire() as conn:
                updated = await portals.update_portal(conn, scope, portal_id, **_values(form))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Portal %(name)s saved."), name=form.cleaned["name"])
            if updated.require_2fa and not current.require_2fa:
                sent = await _send_sign_in_keys(request, updated)
                await flash(request, N_("Two-factor authentication is now required. Sign-in keys e-mailed: %(count)s."), "info", count=sent)
            raise web.HTTPSeeOther("/admin/portals")
    return page(request, "admin/form.html", {"form": form, "action": f"/admin/portals/{portal_id}",
                                             "back": "/admin/portals"},
                active="portals", title=i18n.gettext("Edit portal %(name)s", name=current.name),
                status=400 if form.submitted else 200)
