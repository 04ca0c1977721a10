"""Sender IDs of the signed-in user's partner: the list and the request form.

A request goes to the partner's provider (its parent) for a decision; the
Admin Panel (portal/admin/senders.py) is where it is approved. Supporting
documents are kept under ``<var_dir>/uploads/sender-ids/`` and referenced by
a random storage key.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from aiohttp import web

from accounts import senders
from accounts.tenancy import Scope
from config.errors import HeraldError, Invalid
from gateway.base.app import DB, SETTINGS
from portal import i18n, tables
from portal.auth import login_required, signed_in
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash, render

routes = web.RouteTableDef()
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
STATUS_LABELS = {"enabled": N_("Enabled"), "disabled": N_("Disabled"), "waiting": N_("Waiting for approval")}
CHANNELS = [("sms", N_("SMS")), ("viber", N_("Viber"))]


FIELDS = (
    Field("channel", N_("Channel"), "select", required=True, choices=CHANNELS),
    Field("sender", N_("Sender ID"), required=True, max_length=32,
          help=N_("SMS: up to 11 letters and digits, or a number of up to 15 digits. Viber: up to 32 characters.")),
    Field("comment", N_("Comment"), "textarea", max_length=500,
          help=N_("What the sender ID is for; it helps the approval.")),
    Field("document", N_("Supporting document"), "file",
          help=N_("A letter of authorisation or trade mark certificate, up to 10 MB.")),
)

TABLE = tables.TableSpec(
    id="sender_ids", label=N_("Sender IDs"),
    columns=(
        tables.Column("sender", N_("Sender ID"), hideable=False),
        tables.Column("channel", N_("Channel")),
        tables.Column("status", N_("Status")),
        tables.Column("requested", N_("Requested")),
        tables.Column("valid_until", N_("Valid until")),
    ),
    filters=(tables.Filter("channel", N_("Channel"), "select", tuple(CHANNELS)),),
    sort_key=lambda s: (s.id,), row_id=lambda s: s.id,
)


def _scope(request: web.Request) -> Scope:
    user = signed_in(request)
    return Scope(user.partner_id, user.partner_kind, user.id)  # type: ignore[arg-type]


async def _page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    user = signed_in(request)
    scope = _scope(request)

    async def fetch(*, filters, after, before, limit):
        rows = await senders.list_sender_ids(request.app[DB], scope, partner_id=user.partner_id,
                                             channel=filters.get("channel") or None, limit=10000)
        if after is not None:
            return [r for r in rows if (r.id,) > tuple(after)][:limit]
        if before is not None:
            return [r for r in rows if (r.id,) < tuple(before)][-limit:]
        return rows[:limit]

    view = await tables.load(request, TABLE, fetch, prefs=tables.table_prefs(user.ui_prefs, TABLE.id))
    return render(request, "senders.html", {
        "view": view, "form": form, "status_labels": STATUS_LABELS, "channel_labels": dict(CHANNELS),
        "can_request": user.partner_kind != "owner",
    }, active="senders", title=i18n.gettext("Sender IDs"), status=status)


@routes.get("/sender-ids")
@login_required
async def sender_ids(request: web.Request) -> web.Response:
    return await _page(request, Form(FIELDS, initial={"channel": "sms"}))


async def _store(request: web.Request, upload) -> senders.Document:
    data = upload.file.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise Invalid("The file is larger than 10 MB.", field="document")
    key = secrets.token_hex(16)
    folder = Path(request.app[SETTINGS].var_dir) / "uploads" / "sender-ids"

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(data)

    await asyncio.to_thread(write)
    name = Path(upload.filename or "document").name[:200]
    return senders.Document(name, f"sender-ids/{key}", upload.content_type or "application/octet-stream",
                            len(data))


@routes.post("/sender-ids")
@login_required
async def request_sender_id(request: web.Request) -> web.Response:
    data = await request.post()
    form = Form(FIELDS, data)
    upload = data.get("document")
    form.values["document"] = ""  # a file input never shows a value back
    if form.validate():
        try:
            documents = [await _store(request, upload)] if getattr(upload, "filename", "") else []
            async with request.app[DB].acquire() as conn:
                created = await senders.request_sender_id(
                    conn, _scope(request), channel=form.cleaned["channel"], sender=form.cleaned["sender"],
                    comment=form.cleaned["comment"], documents=documents,
                )
        except HeraldError as exc:
            form.fail(exc)
        else:
            await flash(request, N_("Sender ID %(sender)s requested. We let you know when it is approved."),
                        sender=created.sender)
            raise web.HTTPSeeOther("/sender-ids")
    return await _page(request, form, status=400)
