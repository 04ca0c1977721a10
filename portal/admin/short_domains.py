"""Short domains (system owner): host names for short links, switched on or off, and who may use them.

A domain is granted to every user of a portal, to a partner (its users and
those of the partners below it) or to one user (by e-mail). Each change is
told to the redirect service at once (``Shortener.changed``): a domain
switched off stops answering its links in every Herald process.
"""

from __future__ import annotations

from aiohttp import web

from accounts import partners, portals
from accounts.tenancy import require_owner
from config.errors import HeraldError, Invalid
from portal import i18n, tables
from portal.admin.common import admin_only, badge, db, id_pages, link, load_table, page, scope_of
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash
from shortener import domains
from shortener.web import SHORTENER

routes = web.RouteTableDef()
BASE = "/admin/short-domains"
_ID = r"{id:\d{1,18}}"

NEW_FIELDS = (
    Field("host", N_("Host name"), required=True, max_length=253, placeholder="go.example.com",
          autocomplete="off",
          help=N_("Point its DNS at Herald; short links will read https://<host>/<code>.")),
    Field("enabled", N_("Enabled"), "checkbox",
          help=N_("Off: nobody can shorten with it, and its links answer “not found”.")),
)
KIND_LABELS = {"portal": N_("Portal"), "partner": N_("Partner"), "user": N_("User")}

TABLE = tables.TableSpec(
    id="admin_short_domains", label=N_("Short domains"),
    columns=(
        tables.Column("host", N_("Host name"), hideable=False),
        tables.Column("status", N_("Status")),
        tables.Column("grants", N_("Granted to"), numeric=True),
        tables.Column("links", N_("Links"), numeric=True),
        tables.Column("created", N_("Created")),
    ),
    filters=(tables.Filter("q", N_("Search by host name")),),
    row_actions=True, sort_key=lambda d: (d.domain.id,), row_id=lambda d: d.domain.id,
)


def _status(domain: domains.ShortDomain) -> dict:
    return badge(i18n.gettext("Enabled") if domain.enabled else i18n.gettext("Disabled"), domain.enabled)


@routes.get(BASE)
@admin_only
async def domain_list(request: web.Request) -> web.Response:
    scope = scope_of(request)
    require_owner(scope)

    async def rows(filters):
        q = filters.get("q", "").strip().lower()
        found = await domains.list_domains(db(request), scope)
        return sorted((d for d in found if q in d.domain.host), key=lambda d: d.domain.id)

    view = await load_table(request, TABLE, id_pages(rows, key=lambda d: (d.domain.id,)))
    return page(request, "admin/list.html", {
        "view": view,
        "cells": lambda d: {
            "host": link(f"{BASE}/{d.domain.id}", d.domain.host), "status": _status(d.domain),
            "grants": d.grants, "links": d.links, "created": i18n.format_date(d.domain.created_at),
        },
        "row_actions": lambda d: [link(f"{BASE}/{d.domain.id}", i18n.gettext("Edit"))],
        "top_actions": [(f"{BASE}/new", i18n.gettext("New short domain"))],
        "intro": i18n.gettext("Host names for the short links of campaigns. Users see the URL Shortener "
                              "once a domain is granted to them, their partner or their portal."),
    }, active="short_domains", title=i18n.gettext("Short domains"))


@routes.get(f"{BASE}/new")
@routes.post(f"{BASE}/new")
@admin_only
async def domain_new(request: web.Request) -> web.Response:
    scope = scope_of(request)
    require_owner(scope)
    data = await request.post() if request.method == "POST" else None
    form = Form(NEW_FIELDS, data, initial={"enabled": True})
    if data is not None and form.validate():
        try:
            async with db(request).acquire() as conn:
                created = await domains.create_domain(conn, scope, form.cleaned["host"],
                                                      enabled=form.cleaned["enabled"])
        except HeraldError as exc:
            form.fail(exc)
        else:
            await request.app[SHORTENER].changed()
            await flash(request, N_("Short domain %(host)s created. Grant it to portals, partners or users."),
                        host=created.host)
            raise web.HTTPSeeOther(f"{BASE}/{created.id}")
    return page(request, "admin/form.html", {"form": form, "action": f"{BASE}/new", "back": BASE},
                active="short_domains", title=i18n.gettext("New short domain"),
                status=400 if form.submitted else 200)


async def _choices(request: web.Request) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    scope = scope_of(request)
    portal_choices = [(str(p.id), f"{p.name} ({p.host})") for p in await portals.list_portals(db(request), scope)]
    me = await partners.get_partner(db(request), scope, scope.partner_id)
    below = sorted(await partners.list_partners(db(request), scope, limit=10000), key=lambda p: p.path)
    partner_choices = [(str(p.id), "\u00a0\u00a0" * (p.depth - me.depth) + p.name) for p in [me, *below]]
    return portal_choices, partner_choices


def _grant_fields(portal_choices, partner_choices) -> dict[str, tuple[Field, ...]]:
    return {
        "portal": (Field("target", N_("Portal"), "select", required=True, choices=portal_choices, translate=False),),
        "partner": (Field("target", N_("Partner"), "select", required=True, choices=partner_choices,
                          translate=False, help=N_("Its users and those of the partners below it.")),),
        "user": (Field("target", N_("User e-mail"), "email", required=True, max_length=254, autocomplete="off"),),
    }


async def _detail(request: web.Request, domain: domains.ShortDomain, forms: dict[str, Form] | None = None,
                  status: int = 200) -> web.Response:
    scope = scope_of(request)
    portal_choices, partner_choices = await _choices(request)
    fields = _grant_fields(portal_choices, partner_choices)
    forms = {kind: (forms or {}).get(kind) or Form(fields[kind]) for kind in fields}
    grants = await domains.list_grants(db(request), scope, domain.id)
    return page(request, "admin/short_domain.html", {
        "d": domain, "grants": grants, "forms": forms, "kind_labels": KIND_LABELS, "base": BASE,
        "status_badge": _status(domain),
    }, active="short_domains", title=domain.host, status=status)


@routes.get(f"{BASE}/{_ID}")
@admin_only
async def domain_edit(request: web.Request) -> web.Response:
    domain = await domains.get_domain(db(request), scope_of(request), int(request.match_info["id"]))
    return await _detail(request, domain)


@routes.post(f"{BASE}/{_ID}/grants/{{kind:portal|partner|user}}")
@admin_only
async def grant_add(request: web.Request) -> web.Response:
    scope = scope_of(request)
    domain = await domains.get_domain(db(request), scope, int(request.match_info["id"]))
    kind = request.match_info["kind"]
    portal_choices, partner_choices = await _choices(request)
    form = Form(_grant_fields(portal_choices, partner_choices)[kind], await request.post())
    if form.validate():
        try:
            if kind == "user":
                found = await domains.users_with_email(db(request), scope, form.cleaned["target"])
                if not found:
                    raise Invalid("No user has this e-mail address.", field="target")
                if len(found) > 1:
                    raise Invalid("Users of several portals have this e-mail address: grant the domain to "
                                  "their partner instead.", field="target")
                target = found[0]
            else:
                target = int(form.cleaned["target"])
            await domains.add_grant(db(request), scope, domain.id, kind, target)
        except HeraldError as exc:
            form.fail(exc)
        else:
            await request.app[SHORTENER].changed()
            await flash(request, N_("%(host)s granted."), host=domain.host)
            raise web.HTTPSeeOther(f"{BASE}/{domain.id}")
    return await _detail(request, domain, {kind: form}, status=400)


@routes.post(f"{BASE}/{_ID}/grants/{{grant:\\d{{1,18}}}}/remove")
@admin_only
async def grant_remove(request: web.Request) -> web.Response:
    scope = scope_of(request)
    domain_id = int(request.match_info["id"])
    await domains.remove_grant(db(request), scope, domain_id, int(request.match_info["grant"]))
    await request.app[SHORTENER].changed()
    await flash(request, N_("Access removed."))
    raise web.HTTPSeeOther(f"{BASE}/{domain_id}")


async def _switch(request: web.Request, enabled: bool) -> web.Response:
    domain = await domains.set_enabled(db(request), scope_of(request), int(request.match_info["id"]), enabled)
    await request.app[SHORTENER].changed()
    await flash(request, N_("%(host)s is enabled.") if enabled else N_("%(host)s is disabled."), host=domain.host)
    raise web.HTTPSeeOther(f"{BASE}/{domain.id}")


@routes.post(f"{BASE}/{_ID}/enable")
@admin_only
async def domain_enable(request: web.Request) -> web.Response:
    return await _switch(request, True)


@routes.post(f"{BASE}/{_ID}/disable")
@admin_only
async def domain_disable(request: web.Request) -> web.Response:
    return await _switch(request, False)


@routes.post(f"{BASE}/{_ID}/delete")
@admin_only
async def domain_delete(request: web.Request) -> web.Response:
    scope = scope_of(request)
    domain = await domains.get_domain(db(request), scope, int(request.match_info["id"]))
    try:
        await domains.delete_domain(db(request), scope, domain.id)
    except HeraldError as exc:
        await flash(request, exc.message, "error")
        raise web.HTTPSeeOther(f"{BASE}/{domain.id}") from None
    await request.app[SHORTENER].changed()
    await flash(request, N_("Short domain %(host)s deleted."), host=domain.host)
    raise web.HTTPSeeOther(BASE)



