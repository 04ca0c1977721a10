"""What every Admin Panel page shares: the guard, the acting scope, rendering in the admin frame.

Pages act as the signed-in user's partner through a :class:`accounts.tenancy.Scope`,
so billing answers NotFound for anything outside that partner's subtree and
the middleware turns it into a 404 page. Tables here page by id: the lists
of an admin's subtree are small enough to filter in memory (see
:func:`id_pages`), which keeps the keyset cursors of the shared table
component without new SQL in billing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from accounts.tenancy import Scope
from config.errors import Invalid, NotFound
from gateway.base.app import DB
from portal import tables
from portal.auth import require_role, signed_in
from portal.i18n import N_
from portal.menu import MenuEntry
from portal.render import render

ADMIN_ROLES = ("owner_admin", "reseller_admin")
OWNER_ONLY = frozenset({"owner_admin"})

ADMIN_MENU: tuple[MenuEntry, ...] = (
    MenuEntry("partners", N_("Partners"), "/admin/partners", "contacts"),
    MenuEntry("users", N_("Users"), "/admin/users", "user"),
    MenuEntry("senders", N_("Sender IDs"), "/admin/sender-ids", "shield"),
    MenuEntry("portals", N_("Portals"), "/admin/portals", "globe"),
    MenuEntry("plans", N_("Rate plans"), "/admin/plans", "finance"),
    MenuEntry("packs", N_("Message packs"), "/admin/packs", "purchase"),
    MenuEntry("smpp", N_("SMPP accounts"), "/admin/smpp-accounts", "key"),
    MenuEntry("vendors", N_("Vendors"), "/admin/vendors", "api", OWNER_ONLY),
    MenuEntry("refbook", N_("Reference book"), "/admin/reference-book", "book", OWNER_ONLY),
    MenuEntry("routes", N_("Message routes"), "/admin/routes", "link", OWNER_ONLY),
    MenuEntry("short_domains", N_("Short domains"), "/admin/short-domains", "globe", OWNER_ONLY),
    MenuEntry("portal", N_("Campaign Portal"), "/", "arrow-right"),
)

admin_only = require_role(*ADMIN_ROLES)


def scope_of(request: web.Request) -> Scope:
    """The signed-in admin acting for its partner."""
    user = signed_in(request)
    return Scope(user.partner_id, user.partner_kind, user.id)  # type: ignore[arg-type]


def db(request: web.Request):
    return request.app[DB]


def page(request: web.Request, template: str, context: Mapping[str, Any] | None = None, *,
         active: str, title: str = "", status: int = 200) -> web.Response:
    """Render in the frame with the admin menu."""
    return render(request, template, context, status=status, active=active, title=title,
                  menu_entries=ADMIN_MENU)


def int_param(request: web.Request, name: str) -> int:
    """An id from the URL; anything else is a page that does not exist."""
    try:
        return int(request.match_info[name])
    except (KeyError, ValueError):
        raise NotFound("no such object") from None


def parse_decimal(value: str) -> Decimal:
    """A form's money text as Decimal (comma or point), Invalid when it is not a number."""
    try:
        amount = Decimal(value.replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        raise Invalid("Enter a number, such as 10.50.") from None
    if not amount.is_finite():
        raise Invalid("Enter a number, such as 10.50.")
    return amount


def id_pages(rows_of: Callable[[Mapping[str, str]], Awaitable[Sequence[Any]]],
             key: Callable[[Any], tuple] = lambda row: (row.id,)) -> tables.Fetch:
    """A table fetch over rows already in display order: keyset cuts done in memory."""

    async def fetch(*, filters, after, before, limit):
        rows = list(await rows_of(filters))
        if after is not None:
            rows = [r for r in rows if key(r) > tuple(after)]
            return rows[:limit]
        if before is not None:
            rows = [r for r in rows if key(r) < tuple(before)]
            return rows[-limit:]
        return rows[:limit]

    return fetch


async def load_table(request: web.Request, spec: tables.TableSpec, fetch: tables.Fetch) -> tables.TableView:
    user = signed_in(request)
    return await tables.load(request, spec, fetch, prefs=tables.table_prefs(user.ui_prefs, spec.id))


def link(href: str, text: str) -> dict:
    """A cell or action that is a link (see templates/admin/list.html)."""
    return {"kind": "link", "href": href, "text": text}


def badge(text: str, good: bool | None) -> dict:
    return {"kind": "badge", "text": text, "tone": "success" if good else ("warning" if good is False else "")}


def button(action: str, text: str, *, danger: bool = False, fields: Mapping[str, str] | None = None) -> dict:
    """A one-button POST form in a row's actions."""
    return {"kind": "post", "action": action, "text": text, "danger": danger, "fields": dict(fields or {})}
