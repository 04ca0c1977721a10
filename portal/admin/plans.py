"""Rate plans: create, upload the price list (CSV), offer or assign to partners directly below."""

from __future__ import annotations

from aiohttp import web

from billing import plans
from config.errors import HeraldError, NotFound
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
from portal.admin.offers import offer_form
from portal.admin.uploads import csv_response, read_csv_upload, upload_fields
from portal.admin.vendors import TRAFFIC_LABELS
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash

routes = web.RouteTableDef()
MODES = [("submitted", N_("Charge on submission")), ("delivered", N_("Charge on delivery"))]

FIELDS = (
    Field("name", N_("Name"), required=True, max_length=100),
    Field("traffic", N_("Traffic type"), "select", required=True, choices=list(TRAFFIC_LABELS.items())),
    Field("currency", N_("Currency"), max_length=3, placeholder="EUR", help=N_("Empty: your own currency.")),
    Field("billing_mode", N_("Billing"), "select", required=True, choices=MODES),
    Field("for_resellers", N_("For resellers (they build their own plans on it)"), "checkbox"),
    Field("public", N_("Public: every partner directly below may choose it"), "checkbox"),
    Field("description", N_("Description"), "textarea", max_length=1000),
)

TABLE = tables.TableSpec(
    id="admin_plans", label=N_("Rate plans"),
    columns=(
        tables.Column("name", N_("Name"), hideable=False),
        tables.Column("traffic", N_("Traffic type")),
        tables.Column("currency", N_("Currency")),
        tables.Column("mode", N_("Billing")),
        tables.Column("audience", N_("Sold to")),
        tables.Column("public", N_("Public")),
    ),
    row_actions=True, sort_key=lambda p: (p.id,), row_id=lambda p: p.id,
)


@routes.get("/admin/plans")
@admin_only
async def plan_list(request: web.Request) -> web.Response:
    found = await plans.list_own_plans(db(request), scope_of(request))

    async def rows(_filters):
        return found

    view = await load_table(request, TABLE, id_pages(rows))
    yes, no = i18n.gettext("Yes"), i18n.gettext("No")
    return page(request, "admin/list.html", {
        "view": view,
        "cells": lambda p: {
            "name": link(f"/admin/plans/{p.id}", p.name), "traffic": i18n.gettext(TRAFFIC_LABELS[p.traffic]),
            "currency": p.currency, "mode": i18n.gettext(dict(MODES)[p.billing_mode]),
            "audience": i18n.gettext("Resellers") if p.for_resellers else i18n.gettext("End users"),
            "public": badge(yes if p.public else no, p.public),
        },
        "row_actions": lambda p: [link(f"/admin/plans/{p.id}", i18n.gettext("Open"))],
        "top_actions": [("/admin/plans/new", i18n.gettext("New rate plan")),
                        ("/admin/packs", i18n.gettext("Message packs"))],
    }, active="plans", title=i18n.gettext("Rate plans"))


@routes.get("/admin/plans/new")
@routes.post("/admin/plans/new")
@admin_only
async def plan_new(request: web.Request) -> web.Response:
    data = await request.post() if request.method == "POST" else None
    form = Form(FIELDS, data, initial={"traffic": "sms", "billing_mode": "submitted"})
    if data is not None and form.validate():
        values = dict(form.cleaned)
        values["currency"] = values["currency"] or None
        try:
            async with db(request).acquire() as conn:
                plan, _ = await plans.create_plan(conn, scope_of(request), plans.NewPlan(**values))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Rate plan %(name)s created. Upload its prices next."), name=plan.name)
            raise web.HTTPSeeOther(f"/admin/plans/{plan.id}")
    return page(request, "admin/form.html", {"form": form, "action": "/admin/plans/new", "back": "/admin/plans"},
                active="plans", title=i18n.gettext("New rate plan"), status=400 if form.submitted else 200)


async def own_plan(request: web.Request) -> plans.RatePlan:
    scope, plan_id = scope_of(request), int_param(request, "id")
    plan = await plans.get_plan(db(request), scope, plan_id)
    if plan.owner_partner_id != scope.partner_id:
        raise NotFound("no such rate plan")  # plans of partners below are theirs to manage
    return plan


async def _detail(request: web.Request, plan: plans.RatePlan, *, upload: Form | None = None, report=None,
                  offer: Form | None = None, status: int = 200) -> web.Response:
    rates = await plans.rates_of(db(request), scope_of(request), plan.id)
    return page(request, "admin/plan.html", {
        "plan": plan, "rates": rates[:200], "rate_count": len(rates),
        "traffic_label": i18n.gettext(TRAFFIC_LABELS[plan.traffic]),
        "upload": upload or Form(upload_fields()), "report": report,
        "offer": offer or await offer_form(request), "base": f"/admin/plans/{plan.id}",
    }, active="plans", title=plan.name, status=status)


@routes.get("/admin/plans/{id}")
@admin_only
async def plan_detail(request: web.Request) -> web.Response:
    return await _detail(request, await own_plan(request))


@routes.post("/admin/plans/{id}/rates")
@admin_only
async def plan_rates_import(request: web.Request) -> web.Response:
    plan = await own_plan(request)
    form, text = await read_csv_upload(request)
    if text is not None:
        try:
            async with db(request).acquire() as conn:
                report = await plans.import_rates_csv(conn, scope_of(request), plan.id, text,
                                                      replace=form.cleaned["replace"])
        except HeraldError as exc:
            form.fail(exc)
        else:
            return await _detail(request, plan, report=report)
    return await _detail(request, plan, upload=form, status=400)


@routes.get("/admin/plans/{id}/rates.csv")
@admin_only
async def plan_rates_export(request: web.Request) -> web.Response:
    plan = await own_plan(request)
    return csv_response(await plans.export_rates_csv(db(request), scope_of(request), plan.id),
                        f"rate-plan-{plan.id}.csv")


@routes.post("/admin/plans/{id}/offer")
@admin_only
async def plan_offer(request: web.Request) -> web.Response:
    plan = await own_plan(request)
    form = await offer_form(request, await request.post())
    if form.validate():
        partner_id = int(form.cleaned["partner_id"])
        try:
            async with db(request).acquire() as conn, conn.transaction():
                await plans.offer_plan(conn, scope_of(request), plan.id, partner_id)
                if form.cleaned["action"] == "assign":
                    await plans.subscribe(conn, scope_of(request), partner_id, plan.id)
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Rate plan %(name)s assigned.") if form.cleaned["action"] == "assign"
                        else N_("Rate plan %(name)s offered."), name=plan.name)
            raise web.HTTPSeeOther(f"/admin/plans/{plan.id}")
    return await _detail(request, plan, offer=form, status=400)
