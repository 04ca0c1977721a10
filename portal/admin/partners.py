"""Partners: the tree below the acting partner, new resellers and clients, block, top-up, payments."""

from __future__ import annotations

import re
from decimal import Decimal

from aiohttp import web

from accounts import partners
from accounts.partners import NewPartner
from billing import ledger, plans
from config.errors import HeraldError, Invalid
from portal import i18n, tables
from portal.admin.common import (
    admin_only,
    badge,
    button,
    db,
    id_pages,
    int_param,
    link,
    load_table,
    page,
    parse_decimal,
    scope_of,
)
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash

routes = web.RouteTableDef()
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
KIND_LABELS = {"owner": N_("System owner"), "reseller": N_("Reseller"), "client": N_("End user")}
STATUS_LABELS = {"active": N_("Active"), "blocked": N_("Blocked")}


def _currency(value: str) -> str:
    if not _CURRENCY.match(value):
        raise Invalid("Use a 3-letter currency code such as EUR.")
    return value.upper()


def _credit(value: str) -> Decimal:
    amount = parse_decimal(value)
    if amount < 0:
        raise Invalid("The credit limit cannot be negative.")
    return amount


def _amount(value: str) -> Decimal:
    amount = parse_decimal(value)
    if amount == 0:
        raise Invalid("Enter an amount other than zero.")
    if amount != amount.quantize(Decimal("0.000001")):
        raise Invalid("Use at most 6 decimal places.")
    return amount


COMPANY_FIELDS = (
    Field("name", N_("Name"), required=True, max_length=100),
    Field("company_name", N_("Company name"), max_length=200),
    Field("company_address", N_("Company address"), "textarea", max_length=500),
    Field("company_reg_no", N_("Registration number"), max_length=60),
    Field("company_vat_no", N_("VAT number"), max_length=60),
    Field("company_email", N_("Company e-mail"), "email", max_length=254),
    Field("supervisor_email", N_("Supervisor e-mail"), "email", max_length=254,
          help=N_("Receives copies of low-balance warnings.")),
)
OPTION_FIELDS = (
    Field("mo_enabled", N_("Incoming (MO) messages enabled"), "checkbox"),
    Field("allow_signup", N_("May register users on its own"), "checkbox"),
)
CREDIT = Field("credit_limit", N_("Credit limit"), required=True, max_length=24, clean=(_credit,),
               help=N_("How far below zero the balance may go."))


def new_fields(parents: list[tuple[str, str]], kinds: list[tuple[str, str]]) -> tuple[Field, ...]:
    return (
        Field("parent_id", N_("Parent"), "select", required=True, choices=parents, translate=False),
        Field("kind", N_("Type"), "select", required=True, choices=kinds),
        *COMPANY_FIELDS,
        Field("currency", N_("Currency"), max_length=3, placeholder="EUR", clean=(_currency,),
              help=N_("Empty: the parent's currency.")),
        CREDIT, *OPTION_FIELDS,
    )


MONEY_FIELDS = (
    Field("amount", N_("Amount"), required=True, max_length=24, clean=(_amount,),
          help=N_("A negative amount corrects a previous entry.")),
    Field("description", N_("Description"), max_length=200),
)

TABLE = tables.TableSpec(
    id="admin_partners", label=N_("Partners"),
    columns=(
        tables.Column("name", N_("Name"), hideable=False),
        tables.Column("kind", N_("Type")),
        tables.Column("status", N_("Status")),
        tables.Column("balance", N_("Balance"), numeric=True),
        tables.Column("credit", N_("Credit limit"), numeric=True),
        tables.Column("company", N_("Company name"), default=False),
    ),
    filters=(
        tables.Filter("q", N_("Search by name")),
        tables.Filter("kind", N_("Type"), "select", (("reseller", N_("Reseller")), ("client", N_("End user")))),
        tables.Filter("status", N_("Status"), "select", tuple(STATUS_LABELS.items())),
    ),
    row_actions=True, sort_key=lambda p: p.path, row_id=lambda p: p.id,
)

TX_TABLE = tables.TableSpec(
    id="admin_transactions", label=N_("Transactions"),
    columns=(
        tables.Column("date", N_("Date"), hideable=False),
        tables.Column("type", N_("Type")),
        tables.Column("amount", N_("Amount"), numeric=True),
        tables.Column("messages", N_("Messages"), numeric=True),
        tables.Column("description", N_("Description")),
    ),
    sort_key=lambda t: (-t.id,), row_id=lambda t: t.id, page_size=20,
)
TX_TYPES = {
    "campaign": N_("Campaign"), "pack_purchase": N_("Pack purchase"), "topup": N_("Top-up"),
    "payment": N_("Payment"), "api": N_("API"), "mo_reply": N_("MO reply"), "refund": N_("Refund"),
    "smpp": N_("SMPP"),
}


async def subtree(request: web.Request) -> list[partners.Partner]:
    """Every partner below the acting one, in tree order (parents before their children)."""
    rows = await partners.list_partners(db(request), scope_of(request), limit=10000)
    return sorted(rows, key=lambda p: p.path)


def _cells(p: partners.Partner, root_depth: int) -> dict:
    return {
        "name": {"kind": "indent", "depth": p.depth - root_depth, "href": f"/admin/partners/{p.id}", "text": p.name},
        "kind": i18n.gettext(KIND_LABELS[p.kind]),
        "status": badge(i18n.gettext(STATUS_LABELS.get(p.status, p.status)), p.status == "active"),
        "balance": i18n.format_money(p.balance, p.currency),
        "credit": i18n.format_money(p.credit_limit, p.currency),
        "company": p.company_name,
    }


def _status_action(p: partners.Partner) -> dict:
    if p.status == "active":
        return button(f"/admin/partners/{p.id}/block", i18n.gettext("Block"), danger=True)
    return button(f"/admin/partners/{p.id}/unblock", i18n.gettext("Unblock"))


@routes.get("/admin")
@admin_only
async def admin_home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/admin/partners")


@routes.get("/admin/partners")
@admin_only
async def partner_list(request: web.Request) -> web.Response:
    me = await partners.get_partner(db(request), scope_of(request), scope_of(request).partner_id)

    async def rows(filters):
        q = filters.get("q", "").lower()
        return [p for p in await subtree(request)
                if (not q or q in p.name.lower() or q in p.company_name.lower())
                and (not filters.get("kind") or p.kind == filters["kind"])
                and (not filters.get("status") or p.status == filters["status"])]

    view = await load_table(request, TABLE, id_pages(rows, key=lambda p: p.path))
    return page(request, "admin/list.html", {
        "view": view, "cells": lambda p: _cells(p, me.depth),
        "row_actions": lambda p: [link(f"/admin/partners/{p.id}", i18n.gettext("Open")), _status_action(p)],
        "top_actions": [("/admin/partners/new", i18n.gettext("New partner"))],
        "intro": i18n.gettext("%(name)s and everything below it.", name=me.name),
    }, active="partners", title=i18n.gettext("Partners"))


async def _new_form(request: web.Request, data) -> Form:
    scope = scope_of(request)
    me = await partners.get_partner(db(request), scope, scope.partner_id)
    parents = [(str(me.id), me.name)] + [
        (str(p.id), "\u00a0\u00a0" * (p.depth - me.depth) + p.name)
        for p in await subtree(request) if p.kind == "reseller"
    ]
    kinds = [("client", N_("End user")), ("reseller", N_("Reseller"))]
    initial = {"parent_id": request.query.get("parent", str(me.id)), "kind": "client", "credit_limit": "0"}
    return Form(new_fields(parents, kinds), data, initial=initial)


@routes.get("/admin/partners/new")
@routes.post("/admin/partners/new")
@admin_only
async def partner_new(request: web.Request) -> web.Response:
    data = await request.post() if request.method == "POST" else None
    form = await _new_form(request, data)
    if data is not None and form.validate():
        values = dict(form.cleaned)
        parent_id = int(values.pop("parent_id"))
        values["currency"] = values["currency"] or None
        try:
            async with db(request).acquire() as conn:
                created = await partners.create_partner(conn, scope_of(request), parent_id, NewPartner(**values))
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Partner %(name)s created."), name=created.name)
            raise web.HTTPSeeOther(f"/admin/partners/{created.id}")
    return page(request, "admin/form.html", {"form": form, "action": "/admin/partners/new",
                                             "back": "/admin/partners"},
                active="partners", title=i18n.gettext("New partner"), status=400 if form.submitted else 200)


def _money_form(data=None) -> Form:
    return Form(MONEY_FIELDS, data)


async def _detail(request: web.Request, partner_id: int, *, topup: Form | None = None,
                  payment: Form | None = None, status: int = 200) -> web.Response:
    scope = scope_of(request)
    conn = db(request)
    partner = await partners.get_partner(conn, scope, partner_id)
    txs = await ledger.list_transactions(conn, scope, partner_id, limit=1000)
    view = await load_table(request, TX_TABLE, id_pages(lambda _f: _aw(txs), key=lambda t: (-t.id,)))
    own_plans = await plans.list_own_plans(conn, scope) if partner.parent_id == scope.partner_id else []
    active_plans = await plans.active_plans(conn, scope, partner_id)
    return page(request, "admin/partner.html", {
        "partner": partner, "view": view, "managed": partner.id != scope.partner_id,
        "topup": topup or _money_form(), "payment": payment or _money_form(),
        "kind_label": i18n.gettext(KIND_LABELS[partner.kind]),
        "status_label": i18n.gettext(STATUS_LABELS.get(partner.status, partner.status)),
        "own_plans": own_plans, "active_plans": active_plans,
        "tx_cells": lambda t: {
            "date": i18n.format_datetime(t.created_at), "type": i18n.gettext(TX_TYPES.get(t.type, t.type)),
            "amount": i18n.format_money(t.amount, t.currency), "messages": t.messages or None,
            "description": t.description,
        },
        "status_action": _status_action(partner),
    }, active="partners", title=partner.name, status=status)


async def _aw(value):
    return value


@routes.get("/admin/partners/{id}")
@admin_only
async def partner_detail(request: web.Request) -> web.Response:
    return await _detail(request, int_param(request, "id"))


def _edit_fields() -> tuple[Field, ...]:
    return (*COMPANY_FIELDS, CREDIT, *OPTION_FIELDS)


@routes.get("/admin/partners/{id}/edit")
@routes.post("/admin/partners/{id}/edit")
@admin_only
async def partner_edit(request: web.Request) -> web.Response:
    scope, partner_id = scope_of(request), int_param(request, "id")
    conn = db(request)
    current = await partners.get_partner(conn, scope, partner_id)
    data = await request.post() if request.method == "POST" else None
    initial = {f.name: getattr(current, f.name) for f in _edit_fields()}
    form = Form(_edit_fields(), data, initial=initial)
    if data is not None and form.validate():
        values = dict(form.cleaned)
        credit = values.pop("credit_limit")
        try:
            async with conn.acquire() as c, c.transaction():
                await partners.update_partner(c, scope, partner_id, **values)
                if credit != current.credit_limit:
                    await partners.set_credit_limit(c, scope, partner_id, credit)
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Partner %(name)s saved."), name=values["name"])
            raise web.HTTPSeeOther(f"/admin/partners/{partner_id}")
    return page(request, "admin/form.html", {"form": form, "action": f"/admin/partners/{partner_id}/edit",
                                             "back": f"/admin/partners/{partner_id}"},
                active="partners", title=i18n.gettext("Edit %(name)s", name=current.name),
                status=400 if form.submitted else 200)


async def _set_status(request: web.Request, status: str) -> web.Response:
    partner_id = int_param(request, "id")
    p = await partners.set_status(db(request), scope_of(request), partner_id, status)
    await flash(request, N_("%(name)s is blocked.") if status == "blocked" else N_("%(name)s is active again."),
                name=p.name)
    raise web.HTTPSeeOther(f"/admin/partners/{partner_id}")


@routes.post("/admin/partners/{id}/block")
@admin_only
async def partner_block(request: web.Request) -> web.Response:
    return await _set_status(request, "blocked")


@routes.post("/admin/partners/{id}/unblock")
@admin_only
async def partner_unblock(request: web.Request) -> web.Response:
    return await _set_status(request, "active")


async def _money(request: web.Request, kind: str) -> web.Response:
    partner_id = int_param(request, "id")
    form = _money_form(await request.post())
    if form.validate():
        try:
            tx = await ledger.adjust_balance(db(request), scope_of(request), partner_id, form.cleaned["amount"],
                                             type=kind, description=form.cleaned["description"])
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Top-up of %(amount)s recorded.") if kind == "topup"
                        else N_("Payment of %(amount)s recorded."),
                        amount=i18n.format_money(tx.amount, tx.currency))
            raise web.HTTPSeeOther(f"/admin/partners/{partner_id}")
    forms = {"topup": form} if kind == "topup" else {"payment": form}
    return await _detail(request, partner_id, status=400, **forms)


@routes.post("/admin/partners/{id}/topup")
@admin_only
async def partner_topup(request: web.Request) -> web.Response:
    return await _money(request, "topup")


@routes.post("/admin/partners/{id}/payment")
@admin_only
async def partner_payment(request: web.Request) -> web.Response:
    return await _money(request, "payment")
