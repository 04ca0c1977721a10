"""Main menus: which sections a user sees in the side bar.

A menu is a tuple of :class:`MenuEntry`; the layout draws the one the page
was rendered with (the Campaign Portal's by default) and highlights the entry
whose ``key`` equals the page's ``active``. An entry with ``roles`` is shown
only to users holding one of them, one with ``requires`` only to users whose
account has that flag set (the URL Shortener: users with a short domain, or
with short links to look at).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from portal.i18n import N_


@dataclass(frozen=True, slots=True)
class MenuEntry:
    key: str
    label: str  # message id
    path: str
    icon: str  # a name known to the ``icon`` macro (templates/macros/icons.html)
    roles: frozenset[str] | None = None  # None: every signed-in user
    requires: str | None = None  # a flag of the user's Account that must be true (None: none)


CAMPAIGN_MENU: tuple[MenuEntry, ...] = (
    MenuEntry("dashboard", N_("Dashboard"), "/", "dashboard"),
    MenuEntry("contacts", N_("Contacts"), "/contacts", "contacts"),
    MenuEntry("campaigns", N_("Campaigns"), "/campaigns", "campaigns"),
    MenuEntry("statistics", N_("Statistics"), "/statistics", "statistics"),
    MenuEntry("purchase", N_("Purchase"), "/purchase", "purchase"),
    MenuEntry("shortener", N_("URL Shortener"), "/url-shortener", "link", requires="has_shortener"),
    MenuEntry("finance", N_("Finance"), "/finance", "finance"),
    MenuEntry("api", N_("API Connections"), "/api-connections", "api"),
    MenuEntry("senders", N_("Sender IDs"), "/sender-ids", "shield"),
    MenuEntry("admin", N_("Admin Panel"), "/admin", "settings", frozenset({"owner_admin", "reseller_admin"})),
)


def visible(menu: Iterable[MenuEntry], role: str | None, user: object = None) -> list[MenuEntry]:
    """The entries a user with ``role`` (and the flags ``requires`` names on ``user``) may see."""
    return [e for e in menu
            if (e.roles is None or (role is not None and role in e.roles))
            and (e.requires is None or getattr(user, e.requires, False))]
