"""SMPP accounts of end users: the credentials their systems bind to Herald's SMPP server with.

gateway.intake.smpp_accounts holds the accounts but knows nothing of tenants, so
this module checks the tenant first: the account's partner must be in the
acting partner's subtree (accounts.tenancy.visible_partner), else NotFound.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from accounts import partners
from accounts.tenancy import VISIBLE, visible_partner
from config.errors import HeraldError, Invalid, NotFound
from gateway.intake import smpp_accounts
from portal import i18n, tables
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

_LIST = f"""SELECT a.id, p.name AS partner_name FROM smpp_accounts a JOIN partners p ON p.id = a.partner_id
WHERE {VISIBLE} ORDER BY a.id"""


def _ips(value: str) -> list[str]:
    items = [x.strip() for x in value.replace(";", ",").replace("\n", ",").split(",") if x.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise Invalid("Enter IP addresses or ranges such as 192.0.2.0/24.") from None
    return items


def _positive(value: int) -> int:
    if value < 1:
        raise Invalid("Enter a number of at least 1.")
    return value


def _system_id(value: str) -> str:
    if len(value.encode("ascii", "replace")) > 15 or not value.isprintable() or not value.isascii():
        raise Invalid("Use 1 to 15 printable ASCII characters.")
    return value


def _password(value: str) -> str:
    if len(value.encode()) > 8:
        raise Invalid("Use at most 8 characters (an SMPP limit).")
    return value


COMMON = (
    Field("allowed_ips", N_("Allowed IP addresses"), "textarea", max_length=2000, clean=(_ips,),
          help=N_("Addresses or ranges separated by commas, such as 192.0.2.0/24. Empty: any address.")),
    Field("max_binds", N_("Maximum binds"), "number", required=True, clean=(_positive,)),
    Field("tps", N_("Messages per second (TPS)"), "number", clean=(_positive,), help=N_("Empty: no limit.")),
)


def new_fields(choices: list[tuple[str, str]]) -> tuple[Field, ...]:
    return (
        Field("partner_id", N_("End user"), "select", required=True, choices=choices, translate=False),
        Field("system_id", N_("System ID"), required=True, max_length=15, autocomplete="off", clean=(_system_id,)),
        Field("password", N_("SMPP password"), "password", required=True, max_length=8,
              autocomplete="new-password", clean=(_password,), help=N_("Up to 8 characters.")),
        *COMMON,
    )


EDIT_FIELDS = (
    *COMMON,
    Field("enabled", N_("Enabled"), "checkbox"),
    Field("password", N_("New SMPP password"), "password", max_length=8, autocomplete="new-password",
          clean=(_password,), help=N_("Leave empty to keep the current one.")),
)

TABLE = tables.TableSpec(
    id="admin_smpp", label=N_("SMPP accounts"),
    columns=(
        tables.Column("system_id", N_("System ID"), hideable=False),
        tables.Column("partner", N_("End user")),
        tables.Column("ips", N_("Allowed IP addresses")),
        tables.Column("binds", N_("Maximum binds"), numeric=True),
        tables.Column("tps", N_("TPS"), numeric=True),
        tables.Column("status", N_("Status")),
    ),
    filters=(tables.Filter("q", N_("Search by system ID")),),
    row_actions=True, sort_key=lambda a: (a[0].id,), row_id=lambda a: a[0].id,
)


async def visible_account(request: web.Request, account_id: int) -> smpp_accounts.SmppAccount:
    account = await smpp_accounts.get_account(db(request), account_id)
    if account is None:
        raise NotFound("no such SMPP account")
    await visible_partner(db(request), scope_of(request), account.partner_id)  # NotFound for other tenants
    return account


@routes.get("/admin/smpp-accounts")
@admin_only
async def account_list(request: web.Request) -> web.Response:
    scope = scope_of(request)

    async def rows(filters):
        q = filters.get("q", "").lower()
        out = []
        for r in await db(request).fetch(_LIST, scope.partner_id):
            account = await smpp_accounts.get_account(db(request), r["id"])
            if account and q in account.system_id.lower():
                out.append((account, r["partner_name"]))
        return out

    view = await load_table(request, TABLE, id_pages(rows, key=lambda a: (a[0].id,)))
    on, off = i18n.gettext("Enabled"), i18n.gettext("Disabled")
    return page(request, "admin/list.html", {
        "view": view,
        "cells": lambda a: {
            "system_id": link(f"/admin/smpp-accounts/{a[0].id}", a[0].system_id),
            "partner": link(f"/admin/partners/{a[0].partner_id}", a[1]),
            "ips": ", ".join(a[0].allowed_ips) or i18n.gettext("Any"), "binds": a[0].max_binds,
            "tps": a[0].tps or i18n.gettext("No limit"), "status": badge(on if a[0].enabled else off, a[0].enabled),
        },
        "row_actions": lambda a: [link(f"/admin/smpp-accounts/{a[0].id}", i18n.gettext("Edit"))],
        "top_actions": [("/admin/smpp-accounts/new", i18n.gettext("New SMPP account"))],
    }, active="smpp", title=i18n.gettext("SMPP accounts"))


@routes.get("/admin/smpp-accounts/new")
@routes.post("/admin/smpp-accounts/new")
@admin_only
async def account_new(request: web.Request) -> web.Response:
    scope = scope_of(request)
    clients = await partners.list_partners(db(request), scope, kind="client", limit=10000)
    data = await request.post() if request.method == "POST" else None
    form = Form(new_fields([(str(p.id), p.name) for p in clients]), data,
                initial={"partner_id": request.query.get("partner", ""), "max_binds": "4"})
    if data is not None and form.validate():
        v = form.cleaned
        try:
            partner = await visible_partner(db(request), scope, int(v["partner_id"]))
            account = await smpp_accounts.create_account(
                db(request), partner.id, v["system_id"], v["password"], allowed_ips=v["allowed_ips"] or (),
                max_binds=v["max_binds"], tps=v["tps"],
            )
        except HeraldError as exc:
            if "system_id" in (exc.message or ""):
                form.error("system_id", N_("This system ID is already in use."))
            else:
                form.fail(exc)
        else:
            await flash(request, N_("SMPP account %(system_id)s created."), system_id=account.system_id)
            raise web.HTTPSeeOther("/admin/smpp-accounts")
    return page(request, "admin/form.html", {"form": form, "action": "/admin/smpp-accounts/new",
                                             "back": "/admin/smpp-accounts"},
                active="smpp", title=i18n.gettext("New SMPP account"), status=400 if form.submitted else 200)


@routes.get("/admin/smpp-accounts/{id}")
@routes.post("/admin/smpp-accounts/{id}")
@admin_only
async def account_edit(request: web.Request) -> web.Response:
    account = await visible_account(request, int_param(request, "id"))
    data = await request.post() if request.method == "POST" else None
    form = Form(EDIT_FIELDS, data, initial={
        "allowed_ips": ", ".join(account.allowed_ips), "max_binds": account.max_binds,
        "tps": account.tps or "", "enabled": account.enabled,
    })
    if data is not None and form.validate():
        v = dict(form.cleaned)
        password = v.pop("password")
        v["allowed_ips"] = v["allowed_ips"] or []
        async with db(request).acquire() as conn, conn.transaction():
            await smpp_accounts.update_account(conn, account.id, **v)
            if password:
                await smpp_accounts.set_password(conn, account.id, password)
        await flash(request, N_("SMPP account %(system_id)s saved."), system_id=account.system_id)
        raise web.HTTPSeeOther("/admin/smpp-accounts")
    return page(request, "admin/form.html", {"form": form, "action": f"/admin/smpp-accounts/{account.id}",
                                             "back": "/admin/smpp-accounts"},
                active="smpp", title=i18n.gettext("SMPP account %(system_id)s", system_id=account.system_id),
                status=400 if form.submitted else 200)
