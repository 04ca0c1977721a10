"""Vendors (system owner only): SMPP and Viber connection settings, products and their rates.

The bind status column shows the live state every Herald process reports to
Redis for its bind to the vendor (gateway.send.bindstatus): bound, connecting or
failed with the reason, or "Not connected" when no process binds it.
"""

from __future__ import annotations

from aiohttp import web

from billing import vendors
from config.errors import HeraldError, NotFound
from gateway.base.app import REDIS
from gateway.send import bindstatus
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
from portal.admin.uploads import csv_response, read_csv_upload, upload_fields
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash

routes = web.RouteTableDef()
BIND_TYPES = [("transceiver", N_("Transceiver")), ("transmitter", N_("Transmitter")), ("receiver", N_("Receiver"))]
TRAFFIC_LABELS = {"sms": N_("SMS"), "viber_promotion": N_("Viber promotion"),
                  "viber_transaction": N_("Viber transaction")}

FIELDS = (
    Field("name", N_("Name"), required=True, max_length=100),
    Field("channel", N_("Channel"), "select", required=True, choices=[("sms", N_("SMS")), ("viber", N_("Viber"))]),
    Field("protocol", N_("Protocol"), "select", required=True,
          choices=[("smpp", N_("SMPP")), ("http", N_("HTTP (Viber)"))]),
    Field("smpp_host", N_("SMPP host"), max_length=253),
    Field("smpp_port", N_("SMPP port"), "number"),
    Field("system_id", N_("System ID"), max_length=15, autocomplete="off"),
    Field("password", N_("SMPP password"), "password", max_length=8, autocomplete="new-password",
          help=N_("Up to 8 characters. Leave empty to keep the current one.")),
    Field("system_type", N_("System type"), max_length=12),
    Field("bind_type", N_("Bind type"), "select", required=True, choices=BIND_TYPES),
    Field("tps", N_("Messages per second (TPS)"), "number", required=True),
    Field("window_size", N_("Window"), "number", required=True, help=N_("Requests sent before waiting for answers.")),
    Field("http_base_url", N_("Viber API base URL"), "url", max_length=500),
    Field("http_token", N_("Viber API token"), "password", max_length=500, autocomplete="off",
          help=N_("Leave empty to keep the current one.")),
    Field("enabled", N_("Enabled"), "checkbox"),
    Field("exclusive_bind", N_("One bind for all Herald processes"), "checkbox",
          help=N_("For carriers that accept a single session: one process binds, the others stand by.")),
)
PRODUCT_FIELDS = (
    Field("name", N_("Name"), required=True, max_length=100),
    Field("currency", N_("Currency"), required=True, max_length=3, placeholder="EUR"),
    Field("traffic", N_("Traffic type"), "select", required=True, choices=list(TRAFFIC_LABELS.items())),
)

TABLE = tables.TableSpec(
    id="admin_vendors", label=N_("Vendors"),
    columns=(
        tables.Column("name", N_("Name"), hideable=False),
        tables.Column("channel", N_("Channel")),
        tables.Column("endpoint", N_("Address")),
        tables.Column("system_id", N_("System ID")),
        tables.Column("bind", N_("Bind type")),
        tables.Column("tps", N_("TPS"), numeric=True),
        tables.Column("window", N_("Window"), numeric=True, default=False),
        tables.Column("status", N_("Bind status")),
    ),
    row_actions=True, sort_key=lambda v: (v.id,), row_id=lambda v: v.id,
)


_STATE_LABELS = {
    bindstatus.BOUND: (N_("Bound"), True),
    bindstatus.CONNECTING: (N_("Connecting"), None),
    bindstatus.STANDBY: (N_("Standing by"), None),
    bindstatus.FAILED: (N_("Bind failed"), False),
}


def bind_status(v: vendors.Vendor, live: list[bindstatus.BindState] | None = None) -> dict:
    """The vendor's live bind state as a badge (the best of all Herald processes)."""
    if not v.enabled:
        return badge(i18n.gettext("Disabled"), False)
    state, detail = bindstatus.summary(live or [])
    if not state:
        return badge(i18n.gettext("Not connected"), False)
    label, good = _STATE_LABELS.get(state, (state, None))
    text = i18n.gettext(label)
    return badge(f"{text} ({detail})" if detail else text, good)


async def live_states(request: web.Request, ids: list[int]) -> dict[int, list[bindstatus.BindState]]:
    try:
        return await bindstatus.states(request.app[REDIS], ids)
    except Exception:  # the page still renders when Redis is away
        return {}


def _cells(v: vendors.Vendor, live: list[bindstatus.BindState] | None = None) -> dict:
    endpoint = f"{v.smpp_host}:{v.smpp_port}" if v.protocol == "smpp" else (v.http_base_url or "")
    return {
        "name": link(f"/admin/vendors/{v.id}", v.name), "channel": v.channel.upper(), "endpoint": endpoint,
        "system_id": v.system_id, "bind": i18n.gettext(dict(BIND_TYPES).get(v.bind_type, v.bind_type)),
        "tps": v.tps, "window": v.window_size, "status": bind_status(v, live),
    }


@routes.get("/admin/vendors")
@admin_only
async def vendor_list(request: web.Request) -> web.Response:
    scope = scope_of(request)
    found = await vendors.list_vendors(db(request), scope)
    live = await live_states(request, [v.id for v in found])
    view = await load_table(request, TABLE, id_pages(lambda _f: _rows(found)))
    return page(request, "admin/list.html", {
        "view": view, "cells": lambda v: _cells(v, live.get(v.id)),
        "row_actions": lambda v: [link(f"/admin/vendors/{v.id}", i18n.gettext("Open"))],
        "top_actions": [("/admin/vendors/new", i18n.gettext("New vendor"))],
        "intro": i18n.gettext("Bind status is live: what the Herald processes report for their bind to "
                              "each vendor."),
    }, active="vendors", title=i18n.gettext("Vendors"))


async def _rows(rows):
    return rows


def _values(form: Form, *, creating: bool) -> dict:
    values = {k: (v if v != "" else None) for k, v in form.cleaned.items()}
    values["system_type"] = values["system_type"] or ""
    values["enabled"] = bool(form.cleaned["enabled"])
    values["exclusive_bind"] = bool(form.cleaned["exclusive_bind"])
    if not creating:
        for secret in ("password", "http_token"):
            if not values[secret]:
                values.pop(secret)
    return values


@routes.get("/admin/vendors/new")
@routes.post("/admin/vendors/new")
@admin_only
async def vendor_new(request: web.Request) -> web.Response:
    scope = scope_of(request)
    await vendors.list_vendors(db(request), scope)  # 403 for resellers before anything else
    data = await request.post() if request.method == "POST" else None
    form = Form(FIELDS, data, initial={"channel": "sms", "protocol": "smpp", "smpp_port": "2775",
                                       "bind_type": "transceiver", "tps": "10", "window_size": "10",
                                       "enabled": True})
    if data is not None and form.validate():
        try:
            async with db(request).acquire() as conn:
                created = await vendors.create_vendor(conn, scope, vendors.NewVendor(**_values(form, creating=True)))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Vendor %(name)s created."), name=created.name)
            raise web.HTTPSeeOther(f"/admin/vendors/{created.id}")
    return page(request, "admin/form.html", {"form": form, "action": "/admin/vendors/new", "back": "/admin/vendors"},
                active="vendors", title=i18n.gettext("New vendor"), status=400 if form.submitted else 200)


async def _detail(request: web.Request, vendor_id: int, *, form: Form | None = None,
                  product_form: Form | None = None, report=None, upload: Form | None = None,
                  upload_product: int | None = None, status: int = 200) -> web.Response:
    scope = scope_of(request)
    v = await vendors.get_vendor(db(request), scope, vendor_id)
    if form is None:
        initial = {f.name: getattr(v, f.name) for f in FIELDS}
        initial["password"] = initial["http_token"] = ""
        form = Form(FIELDS, initial=initial)
    products = await vendors.list_products(db(request), scope, vendor_id)
    return page(request, "admin/vendor.html", {
        "v": v, "form": form, "products": products, "status_badge": bind_status(v, (await live_states(request, [v.id])).get(v.id)),
        "product_form": product_form or Form(PRODUCT_FIELDS, initial={"currency": "EUR", "traffic": "sms"}),
        "traffic_labels": TRAFFIC_LABELS, "report": report, "upload_product": upload_product,
        "upload": upload or Form(upload_fields()), "blank_upload": Form(upload_fields()),
    }, active="vendors", title=v.name, status=status)


@routes.get("/admin/vendors/{id}")
@admin_only
async def vendor_detail(request: web.Request) -> web.Response:
    return await _detail(request, int_param(request, "id"))


@routes.post("/admin/vendors/{id}")
@admin_only
async def vendor_edit(request: web.Request) -> web.Response:
    scope, vendor_id = scope_of(request), int_param(request, "id")
    await vendors.get_vendor(db(request), scope, vendor_id)
    form = Form(FIELDS, await request.post())
    if form.validate():
        try:
            async with db(request).acquire() as conn:
                await vendors.update_vendor(conn, scope, vendor_id, **_values(form, creating=False))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Vendor %(name)s saved."), name=form.cleaned["name"])
            raise web.HTTPSeeOther(f"/admin/vendors/{vendor_id}")
    return await _detail(request, vendor_id, form=form, status=400)


@routes.post("/admin/vendors/{id}/products")
@admin_only
async def product_new(request: web.Request) -> web.Response:
    scope, vendor_id = scope_of(request), int_param(request, "id")
    await vendors.get_vendor(db(request), scope, vendor_id)
    form = Form(PRODUCT_FIELDS, await request.post())
    if form.validate():
        try:
            async with db(request).acquire() as conn:
                product = await vendors.create_product(conn, scope, vendor_id, **form.cleaned)
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Product %(name)s created."), name=product.name)
            raise web.HTTPSeeOther(f"/admin/vendors/{vendor_id}")
    return await _detail(request, vendor_id, product_form=form, status=400)


async def _product(request: web.Request) -> tuple[int, vendors.Product]:
    scope, vendor_id, product_id = scope_of(request), int_param(request, "id"), int_param(request, "pid")
    for product in await vendors.list_products(db(request), scope, vendor_id):
        if product.id == product_id:
            return vendor_id, product
    raise NotFound("no such product")


@routes.post("/admin/vendors/{id}/products/{pid}/rates")
@admin_only
async def product_rates_import(request: web.Request) -> web.Response:
    vendor_id, product = await _product(request)
    form, text = await read_csv_upload(request)
    report = None
    if text is not None:
        try:
            async with db(request).acquire() as conn:
                report = await vendors.import_product_rates_csv(conn, scope_of(request), product.id, text,
                                                                replace=form.cleaned.get("replace", True))
        except HeraldError as exc:
            form.fail(exc)
    if report is not None:
        return await _detail(request, vendor_id, report=report, upload_product=product.id)
    return await _detail(request, vendor_id, upload=form, upload_product=product.id, status=400)


@routes.get("/admin/vendors/{id}/products/{pid}/rates.csv")
@admin_only
async def product_rates_export(request: web.Request) -> web.Response:
    _, product = await _product(request)
    text = await vendors.export_product_rates_csv(db(request), scope_of(request), product.id)
    return csv_response(text, f"vendor-product-{product.id}-rates.csv")
