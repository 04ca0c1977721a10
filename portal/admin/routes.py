"""Message routes (system owner only): the vendors that carry each destination, in failover order.

Routes are the system's choice of carriers, so only the system owner sees
this screen; resellers get 403, as on Vendors and the Reference book (the
menu entry is owner-only too). A route here is a :class:`gateway.accept.routing.Rule`:
a channel, one match (a number prefix, an MCC or MCCMNC, or nothing for the
channel's default route) and its vendors, primary first. Routes are not
partner-specific: ``gateway.accept.routing`` has no such rule.

Every query and rule lives in :mod:`gateway.accept.routing`; this module parses
forms and renders. "Test a number" normalises the number as the pipeline does and
shows :func:`gateway.accept.routing.trace`: the pipeline's own decision on the
routes as stored right now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from accounts.tenancy import require_owner
from billing import vendors
from billing.mcc import COUNTRIES_BY_MCC
from config.errors import HeraldError, Invalid
from gateway.accept import msisdn, routing
from portal import i18n, tables
from portal.admin.common import admin_only, badge, button, db, link, load_table, page, scope_of
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash

routes = web.RouteTableDef()

CHANNELS = [("sms", N_("SMS")), ("viber", N_("Viber"))]
MIN_SLOTS, MAX_SLOTS = 3, 20  # vendor fields shown: primary + fallbacks ("Add a fallback" adds one)

KIND_LABELS = {
    routing.PREFIX: N_("Number prefix %(match)s"),
    routing.NETWORK: N_("Network %(match)s"),
    routing.COUNTRY: N_("Country %(match)s"),
    routing.DEFAULT: N_("Default route"),
}

MATCH_FIELDS = (
    Field("channel", N_("Channel"), "select", required=True, choices=CHANNELS),
    Field("mccmnc", N_("MCC or MCCMNC"), max_length=6, placeholder="25001", autocomplete="off",
          help=N_("3 digits for a country (250), 5 or 6 for one network (25001).")),
    Field("prefix", N_("Number prefix"), max_length=16, placeholder="7916", autocomplete="off",
          help=N_("Leading digits of the number in international format. Leave this and the MCC "
                  "empty for the channel's default route.")),
)
ENABLED = Field("enabled", N_("Enabled"), "checkbox", help=N_("A disabled route is kept but not used."))

TEST_FIELDS = (
    Field("channel", N_("Channel"), "select", required=True, choices=CHANNELS),
    Field("number", N_("Phone number"), required=True, max_length=32, placeholder="+79161234567",
          autocomplete="off"),
    Field("mccmnc", N_("MCC or MCCMNC"), max_length=6, autocomplete="off",
          help=N_("Empty: the network the reference book gives for the number.")),
)


def _table(vendor_list: list[vendors.Vendor]) -> tables.TableSpec:
    # The vendor filter's choices are the vendors of the day; labels are escaped for the
    # template's gettext, which treats every label as a format string.
    choices = tuple((str(v.id), v.name.replace("%", "%%")) for v in vendor_list)
    return tables.TableSpec(
        id="admin_routes", label=N_("Message routes"),
        columns=(
            tables.Column("match", N_("Match"), hideable=False),
            tables.Column("channel", N_("Channel")),
            tables.Column("vendors", N_("Vendors in failover order")),
            tables.Column("status", N_("Status")),
        ),
        filters=(
            tables.Filter("channel", N_("Channel"), "select", tuple(CHANNELS)),
            tables.Filter("match", N_("MCC, MCCMNC or prefix")),
            tables.Filter("vendor", N_("Vendor"), "select", choices),
        ),
        row_actions=True, sort_key=lambda r: r.sort_key, row_id=lambda r: r.key.slug,
    )


def _position(key: tuple | None) -> tuple[str, int, str] | None:
    """A cursor from the URL as a rule position, or None when it is not one."""
    if key is not None and len(key) == 3 and isinstance(key[0], str) and isinstance(key[1], int) \
            and isinstance(key[2], str):
        return key[0], key[1], key[2]
    return None


def match_label(key: routing.RuleKey) -> str:
    """"Network 25001 (RU)", "Number prefix 7916", "Default route"."""
    text = i18n.gettext(KIND_LABELS[key.kind], match=key.match)
    countries = COUNTRIES_BY_MCC.get(key.mccmnc[:3]) if key.mccmnc else None
    return f"{text} ({', '.join(countries)})" if countries else text


def vendor_order(rule: routing.Rule) -> str:
    skipped = i18n.gettext("not used")
    return " → ".join(v.name if v.usable else f"{v.name} ({skipped})" for v in rule.vendors)


def _cells(rule: routing.Rule) -> dict:
    return {
        "match": link(f"/admin/routes/{rule.key.slug}", match_label(rule.key)),
        "channel": rule.key.channel.upper(),
        "vendors": vendor_order(rule),
        "status": badge(i18n.gettext("Enabled") if rule.enabled else i18n.gettext("Disabled"), rule.enabled),
    }


def _actions(rule: routing.Rule) -> list[dict]:
    return [link(f"/admin/routes/{rule.key.slug}", i18n.gettext("Edit")),
            button(f"/admin/routes/{rule.key.slug}/delete", i18n.gettext("Delete"), danger=True)]


async def _vendors(request: web.Request) -> list[vendors.Vendor]:
    # Vendors and routes are the owner's alone: Forbidden (403) for anyone else, first thing.
    scope = scope_of(request)
    require_owner(scope)
    return await vendors.list_vendors(db(request), scope)


@routes.get("/admin/routes")
@admin_only
async def route_list(request: web.Request) -> web.Response:
    scope = scope_of(request)
    vendor_list = await _vendors(request)
    spec = _table(vendor_list)

    async def fetch(*, filters, after, before, limit):
        vendor = filters.get("vendor")
        return await routing.list_rules(
            db(request), scope, channel=filters.get("channel", ""), match=filters.get("match", ""),
            vendor_id=int(vendor) if vendor else None, after=_position(after), before=_position(before),
            limit=limit)

    view = await load_table(request, spec, fetch)
    return page(request, "admin/routes.html", {
        "view": view, "cells": _cells, "row_actions": _actions,
        "test_form": Form(TEST_FIELDS, initial={"channel": "sms"}), "has_vendors": bool(vendor_list),
    }, active="routes", title=i18n.gettext("Message routes"))


# -- create and edit ------------------------------------------------------------------------------

def _vendor_label(v: vendors.Vendor) -> str:
    label = f"{v.name} · {v.channel.upper()}"
    return label if v.enabled else f"{label} · {i18n.gettext('Disabled')}"


def rule_fields(vendor_list: list[vendors.Vendor], slots: int) -> tuple[Field, ...]:
    """The route form: match, one vendor select per place in the order, enabled."""
    choices = [("", i18n.gettext("None")), *((str(v.id), _vendor_label(v)) for v in vendor_list)]
    places = tuple(
        Field(f"vendors.{i}", i18n.gettext("Primary vendor") if i == 0 else i18n.gettext("Fallback %(num)s", num=i),
              "select", required=i == 0, choices=choices, translate=False)
        for i in range(slots))
    return (*MATCH_FIELDS, *places, ENABLED)


def _slots(data: Mapping[str, Any] | None, current: int = 0) -> int:
    if data is None:
        return max(MIN_SLOTS, current + 1)
    posted = sum(1 for name in data if name.startswith("vendors."))
    return min(max(posted, 1) + (1 if data.get("_more") else 0), MAX_SLOTS)


def _initial(rule: routing.Rule | None) -> dict[str, Any]:
    if rule is None:
        return {"channel": "sms", "enabled": True}
    values: dict[str, Any] = {"channel": rule.key.channel, "mccmnc": rule.key.mccmnc or "",
                              "prefix": rule.key.prefix or "", "enabled": rule.enabled}
    values.update({f"vendors.{i}": str(v.id) for i, v in enumerate(rule.vendors)})
    return values


async def _save(request: web.Request, form: Form, replaces: routing.RuleKey | None) -> routing.Rule | None:
    """Store the posted route; None (and the errors in ``form``) when it is refused."""
    if not form.validate():
        return None
    places = [f.name for f in form if f.name.startswith("vendors.") and form.cleaned[f.name]]
    key = routing.RuleKey(form.cleaned["channel"], form.cleaned["mccmnc"] or None, form.cleaned["prefix"] or None)
    try:
        async with db(request).acquire() as conn:
            return await routing.save_rule(conn, scope_of(request), key,
                                           [int(form.cleaned[name]) for name in places],
                                           enabled=form.cleaned["enabled"], replaces=replaces)
    except HeraldError as exc:
        # The rule names the refused place among the vendors chosen; show it at its select.
        if exc.field and exc.field.startswith("vendors."):
            index = int(exc.field.split(".", 1)[1])
            exc.field = places[index] if index < len(places) else "vendors.0"
        form.fail(exc)
        return None


def _form_page(request: web.Request, form: Form, *, action: str, rule: routing.Rule | None,
               status: int) -> web.Response:
    title = match_label(rule.key) if rule else i18n.gettext("New route")
    return page(request, "admin/routes_form.html", {"form": form, "action": action, "rule": rule},
                active="routes", title=title, status=status)


@routes.get("/admin/routes/new")
@routes.post("/admin/routes/new")
@admin_only
async def route_new(request: web.Request) -> web.Response:
    vendor_list = await _vendors(request)
    data = await request.post() if request.method == "POST" else None
    form = Form(rule_fields(vendor_list, _slots(data)), data, initial=_initial(None))
    if data is not None and not data.get("_more"):
        saved = await _save(request, form, None)
        if saved is not None:
            await flash(request, N_("Route %(name)s created."), name=match_label(saved.key))
            raise web.HTTPSeeOther("/admin/routes")
    return _form_page(request, form, action="/admin/routes/new", rule=None,
                      status=400 if form.errors or form.form_errors else 200)


@routes.get("/admin/routes/test")
@admin_only
async def route_test(request: web.Request) -> web.Response:
    vendor_list = await _vendors(request)
    asked = "number" in request.rel_url.query
    form = Form(TEST_FIELDS, request.rel_url.query if asked else None, initial={"channel": "sms"})
    result = None
    if asked and form.validate():
        try:
            result = await _test(request, form, {v.id: v.name for v in vendor_list})
        except HeraldError as exc:
            form.fail(exc)
    return page(request, "admin/routes_test.html", {"form": form, "result": result},
                active="routes", title=i18n.gettext("Test a number"), status=400 if form.errors else 200)


async def _normalise(raw: str) -> str | None:
    """The pipeline's own reading of a destination (E.164 digits), or None."""
    rules = await asyncio.to_thread(msisdn.shared_rules)  # built once, off the event loop
    return rules.normalise(raw)


async def _test(request: web.Request, form: Form, names: Mapping[int, str]) -> dict[str, Any]:
    number = await _normalise(form.cleaned["number"])
    if number is None:
        raise Invalid("This is not a valid phone number.", field="number")
    found = await routing.trace(db(request), form.cleaned["channel"], number,
                                form.cleaned["mccmnc"] or None)
    if found.mccmnc is None:
        return {"msisdn": number, "network": None, "unknown": True}
    levels = [{"label": match_label(key), "href": f"/admin/routes/{key.slug}",
               "vendors": [names.get(v, f"#{v}") for v in vendor_ids]}
              for key, vendor_ids in found.levels]
    return {"msisdn": number, "network": found.network, "mccmnc": found.mccmnc, "levels": levels,
            "order": [names.get(v, f"#{v}") for v in found.vendor_ids], "unknown": False}


async def _rule(request: web.Request) -> routing.Rule:
    scope = scope_of(request)
    require_owner(scope)
    return await routing.get_rule(db(request), scope, routing.parse_slug(request.match_info["key"]))


@routes.get("/admin/routes/{key}")
@admin_only
async def route_detail(request: web.Request) -> web.Response:
    vendor_list = await _vendors(request)
    rule = await _rule(request)
    form = Form(rule_fields(vendor_list, _slots(None, len(rule.vendors))), initial=_initial(rule))
    return _form_page(request, form, action=f"/admin/routes/{rule.key.slug}", rule=rule, status=200)


@routes.post("/admin/routes/{key}")
@admin_only
async def route_edit(request: web.Request) -> web.Response:
    vendor_list = await _vendors(request)
    rule = await _rule(request)
    data = await request.post()
    form = Form(rule_fields(vendor_list, _slots(data)), data)
    if not data.get("_more"):
        saved = await _save(request, form, rule.key)
        if saved is not None:
            await flash(request, N_("Route %(name)s saved."), name=match_label(saved.key))
            raise web.HTTPSeeOther("/admin/routes")
    return _form_page(request, form, action=f"/admin/routes/{rule.key.slug}", rule=rule,
                      status=400 if form.errors or form.form_errors else 200)


@routes.post("/admin/routes/{key}/delete")
@admin_only
async def route_delete(request: web.Request) -> web.Response:
    rule = await _rule(request)
    await routing.delete_rule(db(request), scope_of(request), rule.key)
    await flash(request, N_("Route %(name)s deleted."), name=match_label(rule.key))
    raise web.HTTPSeeOther("/admin/routes")

