"""What plans and packs share: the partners directly below me, and the offer/assign form."""

from __future__ import annotations

from aiohttp import web

from accounts import partners
from portal.admin.common import db, scope_of
from portal.forms import Field, Form
from portal.i18n import N_

ACTIONS = [("offer", N_("Offer (the partner may choose it)")), ("assign", N_("Offer and assign now"))]


async def children(request: web.Request) -> list[partners.Partner]:
    scope = scope_of(request)
    return await partners.list_partners(db(request), scope, parent_id=scope.partner_id, limit=10000)


def offer_fields(choices: list[tuple[str, str]]) -> tuple[Field, ...]:
    return (
        Field("partner_id", N_("Partner"), "select", required=True, choices=choices, translate=False),
        Field("action", N_("What to do"), "select", required=True, choices=ACTIONS),
    )


async def offer_form(request: web.Request, data=None) -> Form:
    choices = [(str(p.id), p.name) for p in await children(request)]
    return Form(offer_fields(choices), data, initial={"action": "offer"})
