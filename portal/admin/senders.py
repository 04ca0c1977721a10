"""Sender ID requests: what waits for my decision, everything in my subtree, approve or decline.

A reseller's approval passes the request to its parent; the system owner's
approval enables the sender ID and may set its validity period
(Campaign Portal guide §7.4, accounts.senders).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

from aiohttp import web

from accounts import partners, senders
from config.errors import HeraldError, Invalid, NotFound
from gateway.base.app import SETTINGS
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
STATUS_LABELS = {"enabled": N_("Enabled"), "disabled": N_("Disabled"), "waiting": N_("Waiting for approval")}
STATE_LABELS = {
    "new": N_("New"), "in_progress": N_("In progress"), "confirmed": N_("Confirmed"), "declined": N_("Declined"),
    "canceled": N_("Canceled"), "unsubscribed": N_("Unsubscribed"), "period_changed": N_("Period changed"),
}
ACTION_LABELS = {
    "requested": N_("Requested"), "passed_on": N_("Approved and passed on"), "approved": N_("Approved"),
    "declined": N_("Declined"), "canceled": N_("Canceled"), "unsubscribed": N_("Unsubscribed"),
    "period_changed": N_("Period changed"), "expired": N_("Expired"),
}
CHANNEL_LABELS = {"sms": N_("SMS"), "viber": N_("Viber")}


def status_badge(s: senders.SenderId) -> dict:
    good = True if s.status == "enabled" else (None if s.status == "waiting" else False)
    return badge(i18n.gettext(STATUS_LABELS.get(s.status, s.status)), good)


def _until(value: str) -> datetime:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise Invalid("Enter a date as YYYY-MM-DD.") from None
    if day <= datetime.now(UTC).date():
        raise Invalid("Choose a date in the future.")
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


APPROVE_FIELDS = (
    Field("comment", N_("Comment"), "textarea", max_length=500),
    Field("valid_until", N_("Valid until"), max_length=10, placeholder="2027-12-31", clean=(_until,),
          help=N_("Empty: no expiry.")),
)
DECLINE_FIELDS = (Field("comment", N_("Reason"), "textarea", required=True, max_length=500),)

TABLE_COLUMNS = (
    tables.Column("sender", N_("Sender ID"), hideable=False),
    tables.Column("channel", N_("Channel")),
    tables.Column("partner", N_("Partner")),
    tables.Column("status", N_("Status")),
    tables.Column("state", N_("Request")),
    tables.Column("updated", N_("Updated")),
    tables.Column("valid_until", N_("Valid until"), default=False),
)
TABLE = tables.TableSpec(
    id="admin_senders", label=N_("Sender IDs"), columns=TABLE_COLUMNS,
    filters=(
        tables.Filter("q", N_("Search by sender ID")),
        tables.Filter("channel", N_("Channel"), "select", tuple(CHANNEL_LABELS.items())),
        tables.Filter("status", N_("Status"), "select", tuple(STATUS_LABELS.items())),
    ),
    row_actions=True, sort_key=lambda s: (s.id,), row_id=lambda s: s.id,
)


@routes.get("/admin/sender-ids")
@admin_only
async def sender_list(request: web.Request) -> web.Response:
    scope = scope_of(request)
    awaiting = request.query.get("view", "mine") != "all"
    names = {p.id: p.name for p in await partners.list_partners(db(request), scope, limit=10000)}

    async def rows(filters):
        found = await senders.list_sender_ids(db(request), scope, awaiting_me=awaiting,
                                              channel=filters.get("channel") or None, limit=10000)
        q = filters.get("q", "").lower()
        return [s for s in found if q in s.sender.lower()
                and (not filters.get("status") or s.status == filters["status"])]

    view = await load_table(request, TABLE, id_pages(rows))
    if not awaiting:  # keep the tab in the pager's links
        for attr in ("next_url", "prev_url", "first_url"):
            url = getattr(view, attr)
            if url:
                setattr(view, attr, url + ("&" if "?" in url else "?") + "view=all")

    def cells(s: senders.SenderId) -> dict:
        return {
            "sender": link(f"/admin/sender-ids/{s.id}", s.sender),
            "channel": i18n.gettext(CHANNEL_LABELS[s.channel]),
            "partner": names.get(s.partner_id, ""), "status": status_badge(s),
            "state": i18n.gettext(STATE_LABELS.get(s.state, s.state)),
            "updated": i18n.format_datetime(s.updated_at),
            "valid_until": i18n.format_date(s.valid_until) if s.valid_until else None,
        }

    return page(request, "admin/list.html", {
        "view": view, "cells": cells,
        "row_actions": lambda s: [link(f"/admin/sender-ids/{s.id}", i18n.gettext("Open"))],
        "tabs": [("mine", i18n.gettext("Awaiting my decision"), "/admin/sender-ids"),
                 ("all", i18n.gettext("All in my tree"), "/admin/sender-ids?view=all")],
        "tab": "mine" if awaiting else "all",
        "empty_text": i18n.gettext("No requests are waiting for you.") if awaiting else None,
    }, active="senders", title=i18n.gettext("Sender IDs"))


async def _detail(request: web.Request, sid: int, *, approve: Form | None = None,
                  decline: Form | None = None, status: int = 200) -> web.Response:
    scope = scope_of(request)
    conn = db(request)
    s = await senders.get_sender_id(conn, scope, sid)
    owner = await partners.get_partner(conn, scope, s.partner_id)
    steps = await senders.events(conn, scope, sid)
    names = {p.id: p.name for p in await partners.list_partners(conn, scope, limit=10000)}
    names[scope.partner_id] = i18n.gettext("You")
    approve_fields = APPROVE_FIELDS if scope.is_owner else APPROVE_FIELDS[:1]
    return page(request, "admin/sender.html", {
        "s": s, "owner": owner, "status_badge": status_badge(s),
        "state_label": i18n.gettext(STATE_LABELS.get(s.state, s.state)),
        "channel_label": i18n.gettext(CHANNEL_LABELS[s.channel]),
        "documents": await senders.documents(conn, scope, sid),
        "events": [(e, i18n.gettext(ACTION_LABELS.get(e.action, e.action)),
                    names.get(e.actor_partner_id, "—") if e.actor_partner_id else i18n.gettext("System"))
                   for e in steps],
        "my_turn": s.pending_partner_id == scope.partner_id,
        "approve": approve or Form(approve_fields), "decline": decline or Form(DECLINE_FIELDS),
        "is_owner": scope.is_owner,
    }, active="senders", title=i18n.gettext("Sender ID %(sender)s", sender=s.sender), status=status)


@routes.get("/admin/sender-ids/{id}")
@admin_only
async def sender_detail(request: web.Request) -> web.Response:
    return await _detail(request, int_param(request, "id"))


@routes.get("/admin/sender-ids/{id}/documents/{n}")
@admin_only
async def sender_document(request: web.Request) -> web.StreamResponse:
    """One supporting document of a request the admin can see (stored by portal/pages/senders.py)."""
    docs = await senders.documents(db(request), scope_of(request), int_param(request, "id"))
    n = int_param(request, "n")
    if not 0 <= n < len(docs):
        raise NotFound("no such document")
    doc = docs[n]
    path = (Path(request.app[SETTINGS].var_dir) / "uploads" / doc.storage_key).resolve()
    if not path.is_file():
        raise NotFound("no such document")
    safe_name = "".join(c for c in doc.file_name if c.isalnum() or c in "._- ") or "document"
    return web.FileResponse(path, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{safe_name}"', "Cache-Control": "no-store",
    })


@routes.post("/admin/sender-ids/{id}/approve")
@admin_only
async def sender_approve(request: web.Request) -> web.Response:
    scope, sid = scope_of(request), int_param(request, "id")
    await senders.get_sender_id(db(request), scope, sid)  # 404 before reading the form
    form = Form(APPROVE_FIELDS if scope.is_owner else APPROVE_FIELDS[:1], await request.post())
    if form.validate():
        try:
            async with db(request).acquire() as conn:
                s = await senders.approve(conn, scope, sid, comment=form.cleaned["comment"],
                                          valid_until=form.cleaned.get("valid_until") or None)
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("%(sender)s is approved and enabled.") if s.status == "enabled"
                        else N_("%(sender)s is approved and passed on for the next decision."), sender=s.sender)
            raise web.HTTPSeeOther("/admin/sender-ids")
    return await _detail(request, sid, approve=form, status=400)


@routes.post("/admin/sender-ids/{id}/decline")
@admin_only
async def sender_decline(request: web.Request) -> web.Response:
    scope, sid = scope_of(request), int_param(request, "id")
    await senders.get_sender_id(db(request), scope, sid)
    form = Form(DECLINE_FIELDS, await request.post())
    if form.validate():
        try:
            async with db(request).acquire() as conn:
                s = await senders.decline(conn, scope, sid, comment=form.cleaned["comment"])
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("%(sender)s is declined."), sender=s.sender)
            raise web.HTTPSeeOther("/admin/sender-ids")
    return await _detail(request, sid, decline=form, status=400)
