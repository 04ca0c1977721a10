"""Message packs: create, offer to partners directly below, or assign (buy on their behalf)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from aiohttp import web

from billing import packs
from config.errors import HeraldError, Invalid, NotFound
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
    parse_decimal,
    scope_of,
)
from portal.admin.offers import offer_form
from portal.admin.plans import MODES
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash

routes = web.RouteTableDef()
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


def _price(value: str) -> Decimal:
    amount = parse_decimal(value)
    if amount < 0:
        raise Invalid("The price cannot be negative.")
    return amount


def _positive(value: int) -> int:
    if value < 1:
        raise Invalid("Enter a number of at least 1.")
    return value


def _countries(value: str) -> tuple[str, ...]:
    codes = [c.strip().upper() for c in value.replace(";", ",").split(",") if c.strip()]
    if any(not _COUNTRY.match(c) for c in codes):
        raise Invalid("List 2-letter country codes separated by commas, such as DE, FR.")
    return tuple(codes)


FIELDS = (
    Field("name", N_("Name"), required=True, max_length=100),
    Field("channel", N_("Channel"), "select", required=True, choices=[("sms", N_("SMS")), ("viber", N_("Viber"))]),
    Field("message_count", N_("Messages"), "number", required=True, clean=(_positive,)),
    Field("price", N_("Price"), required=True, max_length=24, clean=(_price,)),
    Field("validity_days", N_("Valid for (days)"), "number", required=True, clean=(_positive,)),
    Field("countries", N_("Countries"), max_length=500, placeholder="DE, FR", clean=(_countries,),
          help=N_("Empty: every country.")),
    Field("billing_mode", N_("Billing"), "select", required=True, choices=MODES),
    Field("public", N_("Public: every partner directly below may buy it"), "checkbox"),
)

TABLE = tables.TableSpec(
    id="admin_packs", label=N_("Message packs"),
    columns=(
        tables.Column("name", N_("Name"), hideable=False),
        tables.Column("channel", N_("Channel")),
        tables.Column("messages", N_("Messages"), numeric=True),
        tables.Column("price", N_("Price"), numeric=True),
        tables.Column("validity", N_("Valid for (days)"), numeric=True),
        tables.Column("countries", N_("Countries")),
        tables.Column("status", N_("Status")),
    ),
    row_actions=True, sort_key=lambda k: (k.id,), row_id=lambda k: k.id,
)


@routes.get("/admin/packs")
@admin_only
async def pack_list(request: web.Request) -> web.Response:
    found = await packs.list_own_packs(db(request), scope_of(request))

    async def rows(_filters):
        return found

    view = await load_table(request, TABLE, id_pages(rows))
    return page(request, "admin/list.html", {
        "view": view,
        "cells": lambda k: {
            "name": link(f"/admin/packs/{k.id}", k.name), "channel": k.channel.upper(),
            "messages": i18n.format_number(k.message_count), "price": i18n.format_money(k.price, k.currency),
            "validity": k.validity_days, "countries": ", ".join(k.countries) or i18n.gettext("All"),
            "status": badge(i18n.gettext("Archived") if k.archived else i18n.gettext("On sale"), not k.archived),
        },
        "row_actions": lambda k: [link(f"/admin/packs/{k.id}", i18n.gettext("Open"))],
        "top_actions": [("/admin/packs/new", i18n.gettext("New pack"))],
    }, active="packs", title=i18n.gettext("Message packs"))


@routes.get("/admin/packs/new")
@routes.post("/admin/packs/new")
@admin_only
async def pack_new(request: web.Request) -> web.Response:
    data = await request.post() if request.method == "POST" else None
    form = Form(FIELDS, data, initial={"channel": "sms", "validity_days": "30", "billing_mode": "submitted"})
    if data is not None and form.validate():
        try:
            async with db(request).acquire() as conn:
                pack = await packs.create_pack(conn, scope_of(request), packs.NewPack(**form.cleaned))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Pack %(name)s created."), name=pack.name)
            raise web.HTTPSeeOther(f"/admin/packs/{pack.id}")
    return page(request, "admin/form.html", {"form": form, "action": "/admin/packs/new", "back": "/admin/packs"},
                active="packs", title=i18n.gettext("New pack"), status=400 if form.submitted else 200)


async def own_pack(request: web.Request) -> packs.Pack:
    scope = scope_of(request)
    pack = await packs.get_pack(db(request), scope, int_param(request, "id"))
    if pack.owner_partner_id != scope.partner_id:
        raise NotFound("no such pack")
    return pack


async def _detail(request: web.Request, pack: packs.Pack, offer: Form | None = None, status: int = 200):
    form = offer or await offer_form(request)
    return page(request, "admin/pack.html", {"pack": pack, "offer": form, "base": f"/admin/packs/{pack.id}"},
                active="packs", title=pack.name, status=status)


@routes.get("/admin/packs/{id}")
@admin_only
async def pack_detail(request: web.Request) -> web.Response:
    return await _detail(request, await own_pack(request))


@routes.post("/admin/packs/{id}/offer")
@admin_only
async def pack_offer(request: web.Request) -> web.Response:
    pack = await own_pack(request)
    form = await offer_form(request, await request.post())
    if form.validate():
        partner_id = int(form.cleaned["partner_id"])
        try:
            async with db(request).acquire() as conn, conn.transaction():
                await packs.offer_pack(conn, scope_of(request), pack.id, partner_id)
                if form.cleaned["action"] == "assign":
                    await packs.purchase_pack(conn, scope_of(request), partner_id, pack.id, datetime.now(UTC))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Pack %(name)s assigned; its price was charged to the partner.")
                        if form.cleaned["action"] == "assign" else N_("Pack %(name)s offered."), name=pack.name)
            raise web.HTTPSeeOther(f"/admin/packs/{pack.id}")
    return await _detail(request, pack, form, status=400)
